"""[augment] in a run config: `dlopt train` augments training batches; bad sections are one
`error:` line with exit code 2."""

from __future__ import annotations

import json

import pytest

from dlopt.cli import main
from dlopt.data import load_bundled
from dlopt.errors import ConfigError
from dlopt.lab.build import OPTIMIZERS, build_augment
from dlopt.lab.config import parse_config

from ..conftest import assert_one_error_line

CONFIG = """
name = "digits-augmented"
[data]
name = "digits"
train_size = 200
[model]
kind = "cnn"
channels = [8]
hidden = [32]
[optimizer]
name = "adam"
lr = 3e-3
[train]
epochs = 3
batch_size = 32
{augment}
"""


def test_train_with_an_augment_section(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(
        CONFIG.format(
            augment="[augment]\nshape = [1, 8, 8]\ncrop_padding = 1\nrotation = 8\nnoise = 0.05"
        )
    )
    assert main(["train", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.2  # 3 epochs on 200 digits (chance 0.1): it learns


def test_build_augment_composes_the_asked_steps_in_order():
    digits = load_bundled("digits")
    section = parse_config(
        {"augment": {"shape": [1, 8, 8], "crop_padding": 1, "shift": 1, "pca_color": 0.1}}
    ).augment
    aug = build_augment(section, digits)
    assert [type(a).__name__ for a in aug.augmentations] == [
        "RandomCropFlip",
        "RandomAffine",
        "PCAColor",
    ]
    assert build_augment(parse_config({"augment": {}}).augment, digits) is None
    only_noise = build_augment(parse_config({"augment": {"noise": 0.1}}).augment, digits)
    assert [type(a).__name__ for a in only_noise.augmentations] == ["InputNoise"]


@pytest.mark.parametrize(
    "section, needle",
    [
        ("[augment]\nshape = [1, 7, 7]\nshift = 1", "does not hold images"),
        ("[augment]\nshape = [8]\nshift = 1", "augment.shape"),
        ("[augment]\nscale = [1.2, 0.8]", "augment.scale"),
        ("[augment]\nhflip = 2", "augment.hflip"),
        ("[augment]\nrotate = 10", "Did you mean 'rotation'"),
    ],
)
def test_bad_augment_sections_are_one_line(tmp_path, capsys, section, needle):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(augment=section))
    assert main(["train", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert_one_error_line(capsys.readouterr().err, needle)


def test_geometry_on_flat_features_asks_for_the_shape():
    wine = load_bundled("wine")  # 13 flat features, no image shape
    with pytest.raises(ConfigError, match="not images"):
        build_augment(parse_config({"augment": {"rotation": 10.0}}).augment, wine)


def test_weight_decay_skips_biases_and_batch_norm_unless_asked():
    """SPEC C3: weight decay is on the weights; decay_include = "all" adds the rest."""
    from torch import nn

    from dlopt.lab.build import build_optimizer

    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    config = parse_config({"optimizer": {"name": "sgd", "weight_decay": 0.1}}).optimizer
    groups = build_optimizer(config, model).param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight), id(model[2].weight)}
    every = config.model_copy(update={"decay_include": "all"})
    groups = build_optimizer(every, model).param_groups
    assert sum(len(g["params"]) for g in groups if g["weight_decay"] > 0) == 6


def test_a_cnn_on_digits_is_two_dimensional():
    """[data] shape, inferred as [1, 8, 8] for digits: kind = "cnn" builds Conv2d layers."""
    from torch import nn

    from dlopt.lab.build import build_model

    digits = load_bundled("digits")
    model = build_model(parse_config({"model": {"kind": "cnn", "channels": [4]}}), digits)
    assert any(isinstance(m, nn.Conv2d) for m in model.modules())
    with pytest.raises(ConfigError, match=r"data\.shape"):
        build_model(parse_config({"data": {"shape": [1, 9, 9]}, "model": {"kind": "cnn"}}), digits)


def test_every_config_problem_is_listed_in_the_one_error_line(tmp_path, capsys):
    from dlopt.cli import main

    path = tmp_path / "bad.toml"
    path.write_text(
        '[data]\nname = "digits"\n[model]\nactivation = "relux"\n'
        '[optimizer]\nname = "adamx"\nlr = -1\n[train]\nepochs = 0\n'
    )
    assert main(["train", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    for where in ("model.activation", "optimizer.name", "optimizer.lr", "train.epochs"):
        assert where in err
    assert "Did you mean 'relu'" in err and "Did you mean 'adam'" in err
    assert not (tmp_path / "out").exists()


def test_threads_come_from_the_flag_then_the_config_then_the_cores(tmp_path, monkeypatch):
    import os

    import torch

    from dlopt.lab.config import parse_config
    from dlopt.lab.run import use_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("DLOPT_THREADS", raising=False)
        config = parse_config({"data": {"name": "digits"}, "train": {"threads": 1}})
        assert use_threads(config) == 1 == torch.get_num_threads()
        cores = len(os.sched_getaffinity(0))
        assert use_threads(parse_config({"data": {"name": "digits"}})) == min(cores, 4)
        monkeypatch.setenv("DLOPT_THREADS", "2")
        assert use_threads(config) == 2 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_threads_out_of_range_is_one_line(tmp_path, capsys):
    from dlopt.cli import main

    path = tmp_path / "t.toml"
    path.write_text('[data]\nname = "digits"\n[train]\nthreads = 0\n')
    assert main(["train", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "train.threads" in capsys.readouterr().err
    assert main(["--threads", "0", "train", str(path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_expected_groups_are_what_the_built_optimizer_holds(name):
    import torch

    from dlopt.lab.build import build_optimizer, expected_groups

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    decay = {"weight_decay": 0.1} if "weight_decay" in OPTIMIZERS[name].options else {}
    config = parse_config({"optimizer": {"name": name, "lr": 0.03, **decay}})
    expected = expected_groups(config.optimizer, model)
    built = build_optimizer(config.optimizer, model).param_groups
    assert len(expected) == len(built)
    for ours, theirs in zip(expected, built, strict=True):
        assert ours["lr"] == 0.03 and set(ours) > {"lr"}
        assert {k: theirs[k] for k in ours} == ours


def test_a_bad_checkpoint_is_refused_before_the_optimizer_is_built(tmp_path, monkeypatch):
    import dlopt.lab.run as lab_run
    from dlopt.errors import CheckpointError
    from dlopt.lab import train_run
    from dlopt.train import load_checkpoint, save_checkpoint

    config = parse_config({"data": {"name": "digits", "train_size": 150}, "train": {"epochs": 1}})
    train_run(config, tmp_path / "out", quiet=True)
    path = tmp_path / "out" / "checkpoint.pt"
    payload = load_checkpoint(path)[0]
    payload["optimizer"]["param_groups"][0]["lr"] = "0.5"
    save_checkpoint(payload, path, keep_previous=False)
    (tmp_path / "out" / "checkpoint.prev.pt").unlink(missing_ok=True)

    def never(*args, **kwargs):
        raise AssertionError("the optimizer was built before the checkpoint was checked")

    monkeypatch.setattr(lab_run, "build_optimizer", never)
    with pytest.raises(CheckpointError, match=r"holds optimizer lr = '0.5', not a finite number"):
        train_run(config, tmp_path / "out", resume=True, quiet=True)
