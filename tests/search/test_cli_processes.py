"""Three `dlopt search` processes (``python -m dlopt search``, each with its own --out) on one
SQLite study: every planned grid point trains once, COMPLETE, and none is left RUNNING."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest

CONFIG = """
name = "three-processes"
[data]
name = "digits"
train_size = 60
[model]
hidden = [4]
[optimizer]
name = "adam"
[train]
epochs = 1
[search]
strategy = "grid"
q = 6
[search.space]
"optimizer.lr" = { low = 1e-3, high = 1e-1, log = true }
"""


@pytest.mark.slow  # three interpreters importing torch: ~10-20 s on two shared cores
def test_three_cli_processes_run_each_grid_point_once(tmp_path):
    config = tmp_path / "search.toml"
    config.write_text(CONFIG)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "dlopt", "search", str(config), "--storage", url, "--quiet"]
    processes = [
        subprocess.Popen(
            [*command, "--out", str(tmp_path / f"out{i}")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(3)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    trials = optuna.load_study(study_name="three-processes", storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6, "each point once, none RUNNING"
    lrs = sorted(t.params["optimizer.lr"] for t in trials)
    assert lrs == pytest.approx([1e-3 * 10 ** (2 * i / 5) for i in range(6)])
    folders = sorted(f.name for i in range(3) for f in (tmp_path / f"out{i}").glob("trial-*"))
    assert folders == [f"trial-{n:04d}" for n in range(6)]  # each trained by one process
