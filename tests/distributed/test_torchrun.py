"""`dlopt train` under torchrun: rank 0 alone writes, and a SIGKILLed run resumes bit-identically."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from dlopt.errors import DataError
from dlopt.lab.config import parse_config
from dlopt.lab.folder import locked

CONFIG = {
    "name": "ddp",
    "seed": 2,
    "data": {"name": "digits", "train_size": 600},
    "model": {"hidden": [16]},
    "optimizer": {"name": "momentum", "lr": 0.05},
    "train": {"epochs": 20, "batch_size": 40, "checkpoint_every_steps": 4, "device": "cpu"},
}
TOML = """name = "ddp"
seed = 2
[data]
name = "digits"
train_size = 600
[model]
hidden = [16]
[optimizer]
name = "momentum"
lr = 0.05
[train]
epochs = 20
batch_size = 40
checkpoint_every_steps = 4
device = "cpu"
"""


def on_each_rank(rank: int, world: int, out: Path) -> dict[str, Any]:
    """The uninterrupted run, trained by both ranks into one folder (the spawn harness)."""
    from dlopt.lab.run import train_run

    os.environ["WORLD_SIZE"] = str(world)
    result = train_run(parse_config(CONFIG), out, quiet=True)
    return {"test_metrics": result.test_metrics}


def _wait_until_released(folder: Path, timeout: float = 60.0) -> None:
    """Until `dlopt train` could take the run folder (no process holds its lock)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with locked(folder):
                return
        except DataError:
            assert time.monotonic() < deadline, f"{folder} still locked after {timeout} s"
            time.sleep(0.05)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "best.pt", weights_only=True)["model"]


def _torchrun(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node=2", "-m", "dlopt.cli", "train", *args]
    return subprocess.Popen(command, env=env, text=True, start_new_session=True)


def test_rank0_alone_writes(spawned: list[dict[str, Any]], spawned_folder: Path) -> None:
    rank0, rank1 = (r["torchrun"]["test_metrics"] for r in spawned)
    assert "test_accuracy" in rank0 and rank1 == {}  # rank 1 evaluated and wrote nothing
    files = sorted(p.name for p in spawned_folder.iterdir())
    assert "metrics.json" in files and "history.csv" in files
    assert not [f for f in files if "rank" in f or f.endswith(".tmp")]


@pytest.mark.slow
def test_sigkilled_run_resumes_bit_identically(tmp_path: Path, spawned_folder: Path) -> None:
    config = tmp_path / "ddp.toml"
    config.write_text(TOML)
    out = tmp_path / "run"
    run = _torchrun(str(config), "--out", str(out), "--quiet")
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.prev.pt").exists() and run.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    os.killpg(run.pid, signal.SIGKILL)  # the agent and both workers, mid-run
    run.wait()
    _wait_until_released(out)  # the workers, orphaned by the agent, may still be exiting
    assert not (out / "metrics.json").exists(), "the run finished before the kill"
    # the shorthand: dlopt train --nproc 2 launches torchrun's agent
    command = [sys.executable, "-m", "dlopt.cli", "train", str(config), "--out", str(out)]
    command += ["--quiet", "--resume", "--nproc", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    resumed = subprocess.run(command, env=env, timeout=180)
    assert resumed.returncode == 0
    theirs = _weights(spawned_folder)
    for key, value in _weights(out).items():
        assert torch.equal(value, theirs[key]), key


def test_one_process_refuses_a_two_process_checkpoint(
    spawned: list[dict[str, Any]], spawned_folder: Path
) -> None:
    from dlopt.errors import CheckpointError
    from dlopt.lab.run import train_run

    with pytest.raises(CheckpointError, match="saved by 2 processes but this run has 1"):
        train_run(parse_config(CONFIG), spawned_folder, resume=True, quiet=True)
