"""Issue 18's training features in a run config: [train] clip_grad_norm, label_smoothing,
mixed_precision and metrics, [schedule] one_cycle and warmup_steps, [swa]; bad values are one
`error:` line with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch

from dlopt.cli import main
from dlopt.data import load_bundled
from dlopt.errors import ConfigError
from dlopt.lab.build import build_scheduler, trainer_options
from dlopt.lab.config import parse_config
from dlopt.train import SWA

from ..conftest import assert_one_error_line

CONFIG = """
name = "digits-features"
[data]
name = "digits"
train_size = 200
[model]
hidden = [32]
batch_norm = true
[optimizer]
name = "momentum"
lr = 0.05
[train]
epochs = 3
batch_size = 32
{extra}
"""

FEATURES = """clip_grad_norm = 1.0
label_smoothing = 0.1
mixed_precision = true
metrics = ["f1_macro", "top3_accuracy"]
[schedule]
name = "one_cycle"
[swa]
lr = 0.01
start = 1
[early_stopping]
monitor = "val_f1_macro"
mode = "max"
restore_best_weights = false
"""


def test_train_with_every_feature(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(extra=FEATURES))
    assert main(["train", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert {"val_f1_macro", "val_top3_accuracy"} <= set(history[-1])
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert {"test_f1_macro", "test_top3_accuracy"} <= set(metrics)


def test_train_on_a_dataloader_is_seeded_and_saves_its_order(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(extra="loader_workers = 0"))
    assert main(["train", str(config), "--out", str(tmp_path / "full"), "--quiet"]) == 0
    short = tmp_path / "short.toml"  # the same run, 2 of its 3 epochs: the same batches
    short.write_text(CONFIG.format(extra="loader_workers = 0").replace("epochs = 3", "epochs = 2"))
    assert main(["train", str(short), "--out", str(tmp_path / "cut"), "--quiet"]) == 0
    checkpoint = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    assert checkpoint["source"]["generator"] is not None  # the loader's order is saved
    full = json.loads((tmp_path / "full" / "history.json").read_text())
    cut = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert cut == full[:2]


def test_the_sections_build_torch_schedulers_and_trainer_options():
    config = parse_config(
        {"train": {"epochs": 4, "metrics": ["r2"]}, "schedule": {"name": "one_cycle"}}
    )
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9)
    sched = build_scheduler(config.schedule, opt, 4, steps_per_epoch=7)
    assert isinstance(sched, torch.optim.lr_scheduler.OneCycleLR) and sched.total_steps == 28
    warm = parse_config({"schedule": {"name": "cosine", "warmup_steps": 3}}).schedule
    sched = build_scheduler(warm, torch.optim.SGD(model.parameters(), 0.1), 4, steps_per_epoch=7)
    assert isinstance(sched, torch.optim.lr_scheduler.SequentialLR)
    swa = parse_config({"swa": {"lr": 0.01, "start": 2}})
    options = trainer_options(swa, load_bundled("digits"))
    assert isinstance(options["swa"], SWA) and options["swa"].start == 2
    assert options["scheduler_interval"] == "epoch"


@pytest.mark.parametrize(
    "extra, needle",
    [
        ("clip_grad_norm = 0", "train.clip_grad_norm"),
        ("label_smoothing = 1.0", "train.label_smoothing"),
        ('loss = "mse"\nlabel_smoothing = 0.1', 'not loss = "mse"'),
        ('metrics = ["f1"]', "train.metrics"),
        ('metrics = ["r2"]', "'r2' does not apply to the classification data"),
        ('[schedule]\nname = "step"\nwarmup_steps = 5', "warmup_steps works with"),
        ("[swa]\nlr = 0.01\nstart = 1\n[early_stopping]\npatience = 2", "restore_best_weights"),
        ("[swa]\nlr = 0.01", "swa.start"),
        ('[early_stopping]\nmonitor = "val_f1_macro"', "val_f1_macro' is not logged"),
    ],
)
def test_bad_feature_sections_are_one_line(tmp_path, capsys, extra, needle):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(extra=extra))
    assert main(["train", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert_one_error_line(capsys.readouterr().err, needle)


def test_clipping_with_a_second_order_optimizer_is_a_config_error():
    config = parse_config({"optimizer": {"name": "lbfgs"}, "train": {"clip_grad_norm": 1.0}})
    with pytest.raises(ConfigError, match="lbfgs runs its own line search"):
        trainer_options(config, load_bundled("digits"))
