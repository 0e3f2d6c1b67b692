"""A run folder cannot be mixed up: one process holds it, and --resume refuses another config."""

from __future__ import annotations

import json

import pytest

from dlopt.errors import CheckpointError, DataError
from dlopt.lab.config import parse_config
from dlopt.lab.folder import MAY_CHANGE, locked, store_or_check_config


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    with locked(tmp_path / "out"):
        (tmp_path / "out" / ".x.tmp").write_text("")
        busy = pytest.raises(DataError, match=r"in use by another dlopt process \(pid \d+\)")
        with busy, locked(tmp_path / "out"):
            pass
    with locked(tmp_path / "out"):  # released, and the stale temp file is gone
        assert not (tmp_path / "out" / ".x.tmp").exists()


def test_resume_refuses_a_different_config_naming_the_keys(tmp_path):
    base = parse_config({"optimizer": {"lr": 0.01}, "train": {"epochs": 2}})
    store_or_check_config(base, tmp_path, resume=False)
    assert json.loads((tmp_path / "config.json").read_text())["optimizer"]["lr"] == 0.01
    longer = parse_config({"optimizer": {"lr": 0.01}, "train": {"epochs": 9}})
    store_or_check_config(longer, tmp_path, resume=True)  # epochs may change
    other = parse_config({"optimizer": {"lr": 0.5}, "model": {"activation": "tanh"}})
    with pytest.raises(CheckpointError, match=r"model.activation, optimizer.lr differ"):
        store_or_check_config(other, tmp_path, resume=True)
    assert "train.epochs" in MAY_CHANGE


def test_dlopt_errors_are_value_errors_too():
    from dlopt.errors import DloptError

    assert issubclass(DloptError, ValueError)
    assert "'a\\nerror: b'" in str(DataError("bad", source="a\nerror: b"))


def test_a_stored_config_from_before_a_new_key_resumes_at_its_default(tmp_path):
    """Runs stored before [data] task existed resume: a missing key at its default is equal."""
    import json

    from dlopt.lab.config import parse_config
    from dlopt.lab.folder import CONFIG_FILE, store_or_check_config

    config = parse_config({"train": {"epochs": 1}})
    stored = json.loads(config.model_dump_json())
    del stored["data"]["task"]
    (tmp_path / CONFIG_FILE).write_text(json.dumps(stored))
    store_or_check_config(config, tmp_path, resume=True)  # no error
    changed = parse_config({"train": {"epochs": 1}, "data": {"task": "regression"}})
    with pytest.raises(CheckpointError, match=r"data\.task"):
        store_or_check_config(changed, tmp_path, resume=True)
