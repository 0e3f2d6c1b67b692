"""`dlopt search CONFIG.toml`: trials are training runs of the config with the searched keys put
in; the search resumes from OUT/study.db; bad [search] sections are one error line."""

from __future__ import annotations

import json

import optuna
import pytest

from dlopt.cli import main

from ..conftest import TINY_DIGITS, assert_one_error_line

BASE = 'name = "tiny-search"\n' + TINY_DIGITS + "[train]\nepochs = 2\n"


def write(tmp_path, search: str):
    path = tmp_path / "search.toml"
    path.write_text(BASE + search)
    return path


def test_search_runs_trials_and_resumes(tmp_path, capsys):
    config = write(
        tmp_path,
        """
[search]
strategy = "random"
n_trials = 3
[search.space]
"optimizer.lr" = { low = 1e-3, high = 1e-1, log = true }
"model.hidden" = { choices = [[8], [32, 16]] }
"train.batch_size" = { choices = [16, 32] }
""",
    )
    out = tmp_path / "out"
    assert main(["search", str(config), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "search.json").read_text())
    assert len(summary["trials"]) == 3 and all(t["state"] == "COMPLETE" for t in summary["trials"])
    assert all(t["params"]["model.hidden"] in ([8], [32, 16]) for t in summary["trials"])
    best = min(t["value"] for t in summary["trials"])
    assert summary["best_value"] == best
    for i in range(3):  # each trial is a full training run
        assert (out / f"trial-{i:04d}" / "metrics.json").exists()
    assert "best" in capsys.readouterr().out
    study = optuna.load_study(study_name="tiny-search", storage=f"sqlite:///{out / 'study.db'}")
    assert study.metric_names == ["val_loss"]  # the objective is named after the monitor
    for trial in study.trials:  # Optuna's own values: what trials_dataframe and the dashboard show
        assert trial.params["model.hidden"] in ("[8]", "[32, 16]")
        assert isinstance(trial.params["optimizer.lr"], float)
        assert trial.params["train.batch_size"] in (16, 32)  # an int, as written
        assert trial.distributions["train.batch_size"].choices == (16, 32)
        assert trial.distributions["model.hidden"].choices == ("[8]", "[32, 16]")
        folder = out / f"trial-{trial.number:04d}"
        assert trial.user_attrs["run_folder"] == str(folder.resolve())
        metrics = json.loads((folder / "metrics.json").read_text())
        assert trial.user_attrs["test_accuracy"] == metrics["test_accuracy"]
        assert trial.user_attrs["epochs"] == 2 and "val_loss" in trial.user_attrs
    page = (out / "search.html").read_text()
    assert page.count("data:image/png;base64,") == 2  # history, parallel coordinates
    assert "3 completed trials; importances need at least 8" in page
    assert "href='trial-0002/'" in page
    assert main(["search", str(config), "--out", str(out), "--quiet"]) == 0  # resumed
    assert len(json.loads((out / "search.json").read_text())["trials"]) == 3
    assert not (out / "trial-0003").exists()
    assert main(["train", str(config), "--out", str(tmp_path / "plain"), "--quiet"]) == 0


def test_manual_configurations_and_accuracy_is_maximized(tmp_path, capsys):
    config = write(
        tmp_path,
        """
[search]
strategy = "manual"
monitor = "val_accuracy"
configs = [{ "optimizer.lr" = 1e-6 }, { "optimizer.lr" = 3e-2 }]
[search.space]
"optimizer.lr" = { low = 1e-6, high = 1.0, log = true }
""",
    )
    out = tmp_path / "out"
    assert main(["search", str(config), "--out", str(out)]) == 0
    summary = json.loads((out / "search.json").read_text())
    assert [t["params"]["optimizer.lr"] for t in summary["trials"]] == [1e-6, 3e-2]
    assert summary["best_params"] == {"optimizer.lr": 3e-2}  # the higher accuracy
    lines = capsys.readouterr().err.splitlines()  # not a terminal: one plain line per trial
    assert lines[0].startswith("search 1/2 · trial 0: optimizer.lr=1e-06 → val_accuracy ")
    assert lines[1].startswith("search 2/2 · trial 1: optimizer.lr=0.03 → val_accuracy ")
    assert lines[1].endswith("(trial 1)") and " best val_accuracy " in lines[1]


def test_a_study_written_with_json_prefixed_choices_resumes_in_that_encoding(tmp_path):
    """Studies written before choices were stored natively hold ``"json:[8]"``: a search on
    one carries on in that encoding, and reports the config's values."""
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    config = write(
        tmp_path,
        """
[search]
strategy = "manual"
configs = [{ "model.hidden" = [8] }, { "model.hidden" = [32, 16] }]
[search.space]
"model.hidden" = { choices = [[8], [32, 16]] }
""",
    )
    out = tmp_path / "out"
    out.mkdir()
    old = ("json:[8]", "json:[32, 16]")
    study = optuna.create_study(study_name="tiny-search", storage=f"sqlite:///{out / 'study.db'}")
    study.set_user_attr("dlopt:plan", [{"model.hidden": c} for c in old])
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            value=2.0,
            params={"model.hidden": old[0]},
            distributions={"model.hidden": CategoricalDistribution(old)},
            user_attrs={"dlopt:entry": 0},
        )
    )
    assert main(["search", str(config), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "search.json").read_text())
    assert [t["params"]["model.hidden"] for t in summary["trials"]] == [[8], [32, 16]]
    assert json.loads((out / "trial-0001" / "config.json").read_text())["model"]["hidden"] == [
        32,
        16,
    ]
    assert not (out / "trial-0000").exists()  # the old trial was not run again


def test_choices_stored_alike_are_one_error_line(tmp_path, capsys):
    config = write(
        tmp_path,
        '[search]\n[search.space]\n"model.hidden" = { choices = [[8], "[8]"] }\n',
    )
    assert main(["search", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert_one_error_line(capsys.readouterr().err, "both stored as '[8]'")


@pytest.mark.parametrize(
    "search, needle",
    [
        ("", "no [search] section"),
        ('[search]\nstrategy = "random"\n', "search.space"),
        ('[search]\n[search.space]\n"foo.lr" = { low = 0.1, high = 1.0 }\n', "SECTION.KEY"),
        ('[search]\n[search.space]\n"optimizer.lr" = { low = 1.0, high = 0.1 }\n', "low < high"),
        (
            '[search]\n[search.space]\n"optimizer.lr" = { low = 0.0, high = 1.0, log = true }\n',
            "log scale",
        ),
        ('[search]\n[search.space]\n"optimizer.lr" = { choices = [0.1], low = 0.1 }\n', "either"),
        (
            '[search]\n[search.space]\n"model.hidden" = { choices = [[1979-05-27]] }\n',
            "model.hidden.0: Input should be a valid integer",
        ),
        (
            '[search]\nstrategy = "manual"\n[search.space]\n"optimizer.lr" = { low = 0.1, high = 1.0 }\n',
            "configs",
        ),
        (
            '[search]\nn_trials = 1\n[search.space]\n"optimizer.momentum" = { low = 0.5, high = 0.9 }\n',
            "momentum is an option",
        ),
    ],
)
def test_bad_search_sections_are_one_line(tmp_path, capsys, search, needle):
    config = write(tmp_path, search)
    assert main(["search", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert_one_error_line(capsys.readouterr().err, needle)


def test_the_example_search_config_builds_valid_trials():
    import random
    from pathlib import Path

    from dlopt.lab.config import load_config
    from dlopt.lab.search import space_of, trial_config
    from dlopt.search import sample

    config = load_config(Path(__file__).parents[2] / "examples" / "digits_search.toml")
    assert config.search is not None and config.search.strategy == "coarse-to-fine"
    space = space_of(config.search)
    rng = random.Random(0)
    for i in range(20):
        trial = trial_config(config, sample(space, rng), f"t{i}")
        assert trial.model.hidden in ([64], [128], [256, 128])
        assert 1e-4 <= trial.optimizer.lr <= 1e-1 and 0 <= trial.model.dropout <= 0.5
        assert trial.search is None and trial.train.epochs == 15


def test_an_interrupted_search_exits_130_and_the_same_command_finishes_it(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from ..conftest import run_cli

    config = (
        write(
            tmp_path,
            """
[search]
strategy = "random"
n_trials = 3
[search.space]
"optimizer.lr" = { low = 1e-3, high = 1e-1, log = true }
""",
        )
        .read_text()
        .replace("epochs = 2", "epochs = 40")
    )
    path = tmp_path / "slow.toml"
    path.write_text(config)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "dlopt.cli", "search", str(path), "--out", str(out), "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (out / "trial-0001").exists() and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.2)  # inside the second trial's training
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted by SIGINT" in stderr and "Traceback" not in stderr
    finished = run_cli("search", str(path), "--out", str(out), "--quiet", timeout=180)
    assert finished.returncode == 0, finished.stderr
    trials = json.loads((out / "search.json").read_text())["trials"]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert len(complete) == 3  # the interrupted trial ran again; nothing ran twice
    assert len({t["params"]["optimizer.lr"] for t in complete}) == 3
    assert [t["state"] for t in trials].count("FAIL") == 1


@pytest.mark.parametrize(
    "storage, needle",
    [
        ("postgresql://postgres@127.0.0.1:1/dlopt", "cannot reach the database server"),
        ("postgresql+nosuchdriver://postgres@127.0.0.1:1/dlopt", "not installed"),
    ],
)
def test_a_postgresql_storage_that_cannot_be_used_is_one_line(tmp_path, capsys, storage, needle):
    config = write(
        tmp_path,
        '[search]\nn_trials = 1\n[search.space]\n"optimizer.lr" = { low = 1e-3, high = 0.1 }\n',
    )
    args = ["search", str(config), "--out", str(tmp_path / "out"), "--storage", storage]
    assert main([*args, "--quiet"]) == 2
    assert_one_error_line(capsys.readouterr().err, needle)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(
    "DLOPT_TEST_POSTGRES_URL" not in __import__("os").environ,
    reason="DLOPT_TEST_POSTGRES_URL is not set (.ci/run starts a server)",
)
def test_a_bare_postgresql_url_runs_on_the_installed_driver(tmp_path):
    import os
    import uuid

    config = write(
        tmp_path,
        '[search]\nstrategy = "manual"\nconfigs = [{ "optimizer.lr" = 1e-2 }]\n'
        '[search.space]\n"optimizer.lr" = { low = 1e-3, high = 0.1 }\n',
    )
    text = config.read_text().replace("tiny-search", f"tiny-{uuid.uuid4().hex[:8]}")
    config.write_text(text)
    url = os.environ["DLOPT_TEST_POSTGRES_URL"]
    assert url.startswith("postgresql://")
    args = ["search", str(config), "--out", str(tmp_path / "out"), "--storage", url, "--quiet"]
    assert main(args) == 0
    assert len(json.loads((tmp_path / "out" / "search.json").read_text())["trials"]) == 1
