"""The optional TensorBoard writer: each epoch's metrics read back from the event file equal
the run's history; without the tensorboard package, a clear error naming the extra."""

from __future__ import annotations

import json

import pytest

from dlopt.cli import main

from ..conftest import TINY_DIGITS, assert_one_error_line

CONFIG = 'name = "tb"\n' + TINY_DIGITS + '[train]\nepochs = 3\ntensorboard = "tb"\n'


def test_train_writes_each_epochs_metrics_to_an_event_file(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    history = json.loads((out / "history.json").read_text())
    assert set(events.Tags()["scalars"]) == {k for k in history[0] if k != "epoch"}
    for name in ("loss", "val_loss", "val_accuracy", "lr"):
        scalars = events.Scalars(name)
        assert [s.step for s in scalars] == [1, 2, 3]
        assert [s.value for s in scalars] == pytest.approx([h[name] for h in history], rel=1e-6)


def test_without_tensorboard_the_config_key_is_one_error_line_naming_the_extra(
    tmp_path, capsys, monkeypatch
):
    import dlopt.lab.run
    import dlopt.train.tensorboard as tb

    monkeypatch.setattr(dlopt.lab.run, "tensorboard_available", lambda: False)
    monkeypatch.setattr(tb, "tensorboard_available", lambda: False)
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 2
    assert_one_error_line(capsys.readouterr().err, "train.tensorboard", "dlopt[tensorboard]")
    assert not out.exists()
    with pytest.raises(ImportError, match=r"pip install 'dlopt\[tensorboard\]'"):
        tb.TensorBoard(tmp_path / "tb")
