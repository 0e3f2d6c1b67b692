"""[ensemble] in `dlopt train`: members trained one after another (own seed, own bootstrap
resample), the model average and the vote in OUT/metrics.json, finished members kept on
--resume, and bad sections as one error line."""

from __future__ import annotations

import json
import os

import pytest
import torch

from dlopt.cli import main
from dlopt.ensemble import average, member_outputs, vote
from dlopt.lab.build import build_model
from dlopt.lab.config import load_config
from dlopt.lab.run import load_splits
from dlopt.train.checkpoint import load_checkpoint

from ..conftest import assert_one_error_line

CONFIG = """
name = "tiny-ensemble"
[data]
name = "digits"
train_size = 200
[model]
hidden = [32]
[optimizer]
name = "adam"
lr = 3e-3
[train]
epochs = 6
{ensemble}
"""


def write(tmp_path, ensemble="[ensemble]\nmembers = 3\n"):
    path = tmp_path / "ensemble.toml"
    path.write_text(CONFIG.format(ensemble=ensemble))
    return path


def test_members_their_average_and_vote(tmp_path):
    path, out = write(tmp_path), tmp_path / "out"
    assert main(["train", str(path), "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    config = load_config(path)
    splits = load_splits(config)
    models = []
    for i in range(3):
        model = build_model(config, splits.train)
        model.load_state_dict(load_checkpoint(out / f"member-{i}" / "best.pt")[0]["model"])
        models.append(model)
    outputs = member_outputs(models, splits.test.X)
    y = splits.test.y
    assert metrics["average_accuracy"] == pytest.approx(
        float((average(outputs).argmax(-1) == y).float().mean())
    )
    assert metrics["vote_accuracy"] == pytest.approx(float((vote(outputs) == y).float().mean()))
    members = [metrics[f"member_{i}_accuracy"] for i in range(3)]
    for i, accuracy in enumerate(members):  # every member was tested on the ensemble's split
        own = json.loads((out / f"member-{i}" / "metrics.json").read_text())
        assert own["test_accuracy"] == pytest.approx(accuracy)
    assert metrics["members_mean_accuracy"] == pytest.approx(sum(members) / 3)
    assert len(set(members)) > 1  # each its own seed and resample
    assert not torch.equal(outputs[0], outputs[1])


def test_resume_keeps_finished_members_and_trains_the_rest(tmp_path):
    path, out = write(tmp_path), tmp_path / "out"
    assert main(["train", str(path), "--out", str(out), "--quiet"]) == 0
    first = json.loads((out / "metrics.json").read_text())
    kept = (out / "member-0" / "best.pt").stat().st_mtime_ns
    for name in os.listdir(out / "member-2"):  # as if the run had stopped before member 2
        os.remove(out / "member-2" / name)
    assert main(["train", str(path), "--out", str(out), "--quiet"]) == 2  # no silent restart
    assert main(["train", str(path), "--out", str(out), "--quiet", "--resume"]) == 0
    assert (out / "member-0" / "best.pt").stat().st_mtime_ns == kept
    assert json.loads((out / "metrics.json").read_text()) == first  # member 2 trained again alike


@pytest.mark.parametrize(
    "section, needle",
    [
        ("[ensemble]\nmembers = 1\n", "ensemble.members"),
        ("[ensemble]\nbootstap = true\n", "Did you mean 'bootstrap'"),
    ],
)
def test_bad_ensemble_sections_are_one_line(tmp_path, capsys, section, needle):
    path = write(tmp_path, section)
    assert main(["train", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert_one_error_line(capsys.readouterr().err, needle)
