"""Real processes, real signals: RELIABILITY R3 (SIGKILL), R9 and I4 (exit codes 0/2/3/130/143)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dlopt.train import load_checkpoint

from ..conftest import ROOT, assert_one_error_line, run_cli

CONFIG = """
name = "kill-test"
seed = 3
[data]
name = "digits"
[model]
hidden = [512, 256]        # ~2 MB checkpoints with Adam's moments: kills land inside writes
batch_norm = true
dropout = 0.2
[optimizer]
name = "adam"
lr = 1e-3
[schedule]
name = "plateau"
patience = 0
[train]
epochs = {epochs}
batch_size = 32
checkpoint_every_steps = 1
[early_stopping]
patience = 50
"""
ENV = {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}


def write_config(folder: Path, epochs: int) -> Path:
    path = folder / "run.toml"
    path.write_text(CONFIG.format(epochs=epochs))
    return path


def start(config: Path, out: Path, resume: bool) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "dlopt.cli", "train", str(config), "--out", str(out), "--quiet"]
    return subprocess.Popen(
        args + (["--resume"] if resume else []),
        env={**os.environ, **ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def sidecar(out: Path) -> str:
    try:
        return (out / "checkpoint.pt.sha256").read_text()
    except OSError:
        return ""


def final_model(out: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "checkpoint.pt")[0]["model"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    config = write_config(folder, epochs=8)
    result = run_cli("train", str(config), "--out", str(folder / "out"), "--quiet", env=ENV)
    assert result.returncode == 0, result.stderr
    return config, final_model(folder / "out")


@pytest.mark.parametrize(
    "attempts",
    [pytest.param(3, id="3-kills"), pytest.param(20, id="20-kills", marks=pytest.mark.slow)],
)
def test_sigkill_at_random_steps_then_resume_is_bit_identical(reference, tmp_path, attempts):
    """R3: SIGKILLs at random points (many inside checkpoint writes), restart after each; the
    fast suite kills 3 times, `-m slow` 20 times."""
    config, expected = reference
    out = tmp_path / "out"
    rng = random.Random(11)
    kills = unreadable = restarts_from_scratch = 0
    last_step = -1
    for _ in range(attempts):
        has_checkpoint = (out / "checkpoint.pt").exists() or (out / "checkpoint.prev.pt").exists()
        before = sidecar(out)
        process = start(config, out, resume=has_checkpoint)
        deadline = time.monotonic() + 60
        while sidecar(out) == before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)  # wait until this process has saved at least one new step
        time.sleep(rng.uniform(0.0, 0.15))
        if process.poll() is not None:
            _, stderr = process.communicate()
            assert process.returncode == 0, stderr  # finished before the kill
            break
        process.send_signal(signal.SIGKILL)
        process.communicate()
        kills += 1
        try:
            payload, _ = load_checkpoint(out / "checkpoint.pt")
        except Exception:
            unreadable += 1
            continue
        step = payload["state"]["step"]
        restarts_from_scratch += step < last_step
        last_step = step
    assert kills >= attempts * 3 // 4, f"only {kills} of {attempts} kills landed during training"
    assert unreadable == 0 and restarts_from_scratch == 0
    result = run_cli("train", str(config), "--out", str(out), "--quiet", "--resume", env=ENV)
    assert result.returncode == 0, result.stderr
    got = final_model(out)
    assert all(torch.equal(got[k], expected[k]) for k in expected), "weights differ"


def _interrupt(process: subprocess.Popen, out: Path, sig: int, code: int) -> None:
    """Wait for a checkpoint this process wrote, send `sig`: it saves and exits `code` in 5 s."""
    before = sidecar(out)
    while sidecar(out) == before and process.poll() is None:
        time.sleep(0.01)
    time.sleep(0.3)
    sent = time.monotonic()
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == code, stderr
    assert time.monotonic() - sent < 5
    assert "checkpoint saved" in stderr and "Traceback" not in stderr


def test_sigint_and_sigterm_checkpoint_then_exit_and_resume_exactly(reference, tmp_path):
    """R9 / I4: Ctrl-C (SIGINT), then SIGTERM during the resumed run: each writes its
    checkpoint and exits 130 / 143 within 5 s, and the second --resume ends bit-identical."""
    config, expected = reference
    out = tmp_path / "out"
    _interrupt(start(config, out, resume=False), out, signal.SIGINT, 130)
    _interrupt(start(config, out, resume=True), out, signal.SIGTERM, 143)
    result = run_cli("train", str(config), "--out", str(out), "--quiet", "--resume", env=ENV)
    assert result.returncode == 0, result.stderr
    got = final_model(out)
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_exit_codes_ok_bad_input_and_diverged(tmp_path):
    """I4: 0 ok, 2 bad input (one line), 3 diverged (one line naming epoch and step)."""
    assert run_cli("datasets").returncode == 0
    bad = run_cli("train", str(tmp_path / "missing.toml"))
    assert bad.returncode == 2
    assert_one_error_line(bad.stderr, "missing.toml", "no such file")
    config = tmp_path / "diverge.toml"
    config.write_text(
        '[data]\nname = "polynomial"\n[optimizer]\nname = "sgd"\nlr = 1e12\n'
        "[train]\nepochs = 5\nbatch_size = 8\n"
    )
    diverged = run_cli("train", str(config), "--out", str(tmp_path / "out"), "--quiet")
    assert diverged.returncode == 3, diverged.stderr
    assert_one_error_line(diverged.stderr, "became", "at epoch 1 step")
    assert (tmp_path / "out" / "history.csv").exists() or not list(
        (tmp_path / "out").glob("*.pt.tmp")
    )


def test_an_internal_bug_exits_1_with_one_line_and_a_traceback_only_with_debug(monkeypatch, capsys):
    import dlopt.cli as cli
    import dlopt.data

    def broken(*args, **kwargs):
        raise ZeroDivisionError("deliberate bug")

    monkeypatch.setattr(dlopt.data, "load_data", broken)
    assert cli.main(["datasets", "show", "digits"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("internal error") and "Traceback" not in err and "deliberate" in err
    assert cli.main(["datasets", "show", "digits", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


ENSEMBLE = """
name = "kill-ensemble"
seed = 5
[data]
name = "digits"
train_size = 300
[model]
hidden = [64]
dropout = 0.1
[optimizer]
name = "adam"
lr = 3e-3
[train]
epochs = 4
batch_size = 32
checkpoint_every_steps = 1
[ensemble]
members = 3
bootstrap = true
"""


def ensemble_progress(out: Path) -> tuple[str, ...]:
    """What the ensemble has saved so far: each member's checkpoint hash and whether it ended."""
    members = sorted(out.glob("member-*"))
    return tuple(sidecar(m) + str((m / "metrics.json").exists()) for m in members)


def ensemble_files(out: Path) -> dict[str, object]:
    files: dict[str, object] = {"metrics": (out / "metrics.json").read_text()}
    for member in sorted(out.glob("member-*")):
        for name in ("best.pt", "checkpoint.pt"):
            files[f"{member.name}/{name}"] = load_checkpoint(member / name)[0]["model"]
        files[f"{member.name}/metrics"] = (member / "metrics.json").read_text()
    return files


@pytest.mark.parametrize(
    "attempts",
    [pytest.param(2, id="2-kills"), pytest.param(20, id="20-kills", marks=pytest.mark.slow)],
)
def test_sigkill_an_ensemble_at_random_points_then_resume_is_bit_identical(tmp_path, attempts):
    """An [ensemble] run SIGKILLed at random moments (inside a member, between members, inside
    checkpoint writes) and resumed each time ends with the uninterrupted run's files: every
    member's weights, best weights and metrics, and the ensemble's metrics. No `.tmp` is left."""
    config = tmp_path / "ensemble.toml"
    # 20 kills need a run that lasts: 4 epochs per member ended after 3 on an idle machine
    config.write_text(ENSEMBLE.replace("epochs = 4", f"epochs = {4 if attempts < 5 else 16}"))
    reference = tmp_path / "reference"
    result = run_cli("train", str(config), "--out", str(reference), "--quiet", env=ENV)
    assert result.returncode == 0, result.stderr
    expected = ensemble_files(reference)
    out = tmp_path / "out"
    rng = random.Random(23)
    kills = 0
    for i in range(attempts):
        before = ensemble_progress(out)
        process = start(config, out, resume=i > 0)
        deadline = time.monotonic() + 60
        while (
            ensemble_progress(out) == before
            and process.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.4))
        if process.poll() is not None:
            _, stderr = process.communicate()
            assert process.returncode == 0, stderr
            break
        process.send_signal(signal.SIGKILL)
        process.communicate()
        kills += 1
    assert kills >= attempts * 3 // 4, f"only {kills} of {attempts} kills landed"
    result = run_cli("train", str(config), "--out", str(out), "--quiet", "--resume", env=ENV)
    assert result.returncode == 0, result.stderr
    got = ensemble_files(out)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, str):
            assert got[key] == value, key
        else:
            assert all(torch.equal(got[key][k], value[k]) for k in value), key  # type: ignore[index]
    assert not list(out.rglob("*.tmp"))
