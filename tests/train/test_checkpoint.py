"""Checkpoint integrity and crash safety: RELIABILITY S3, S4, R4, R5."""

import errno
import logging
import os
import random

import pytest
import torch

from dlopt.errors import CheckpointError
from dlopt.train import Checkpoint, EarlyStopping, Trainer, load_checkpoint, save_checkpoint
from dlopt.train.checkpoint import previous_path

from .helpers import digits_small, stochastic_model


def _trained_checkpoint(folder, optimizer="adam"):
    splits = digits_small(128)
    model = stochastic_model()
    from dlopt import optim

    opt = {
        "adam": lambda: torch.optim.Adam(model.parameters(), 1e-3),
        "sgd": lambda: torch.optim.SGD(model.parameters(), 0.1, momentum=0.9),
        "lbfgs": lambda: torch.optim.LBFGS(model.parameters()),
        "dlopt-lbfgs": lambda: optim.LBFGS(model.parameters(), max_iter=3),
        "dlopt-bfgs": lambda: optim.BFGS(model.parameters(), max_iter=3),
        "dlopt-cg": lambda: optim.NonlinearCG(model.parameters(), max_iter=3),
        "dlopt-newton-cg": lambda: optim.NewtonCG(model.parameters(), max_iter=2, max_cg=5),
    }[optimizer]()
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    trainer = Trainer(
        model,
        opt,
        scheduler=sched,
        max_epochs=2,
        batch_size=32,
        callbacks=[EarlyStopping(patience=5), Checkpoint(folder)],
    )
    trainer.fit(splits.train, splits.val)
    return trainer


@pytest.mark.parametrize(
    "optimizer",
    ["adam", "sgd", "lbfgs", "dlopt-lbfgs", "dlopt-bfgs", "dlopt-cg", "dlopt-newton-cg"],
)
def test_every_checkpoint_kind_reloads_weights_only_without_safe_globals(tmp_path, optimizer):
    """S3: trainer checkpoints (with optimizer — dlopt's second-order ones too — scheduler and
    early stopping) and best.pt."""
    _trained_checkpoint(tmp_path, optimizer)
    for name in ("checkpoint.pt", "checkpoint.prev.pt", "best.pt"):
        payload = torch.load(tmp_path / name, weights_only=True)
        assert payload["format"] == "dlopt-checkpoint"
    payload, _ = load_checkpoint(tmp_path / "checkpoint.pt")
    assert payload["callbacks"]["EarlyStopping#0"]["best_weights"] is not None


def test_flipped_bytes_and_truncations_are_detected_before_use(tmp_path):
    """S4: 20 single-byte flips at random offsets and 5 truncations: 25/25 detected."""
    save_checkpoint(
        {"format": "dlopt-checkpoint", "w": torch.randn(2000)},
        tmp_path / "c.pt",
        keep_previous=False,
    )
    good = (tmp_path / "c.pt").read_bytes()
    sidecar = (tmp_path / "c.pt.sha256").read_text()
    rng = random.Random(0)
    detected = 0
    cases = [("flip", rng.randrange(len(good))) for _ in range(20)]
    cases += [("cut", n) for n in (0, 1, len(good) // 3, len(good) // 2, len(good) - 1)]
    for kind, where in cases:
        bad = bytearray(good)
        if kind == "flip":
            bad[where] ^= 0xFF
        else:
            bad = bad[:where]
        (tmp_path / "c.pt").write_bytes(bytes(bad))
        (tmp_path / "c.pt.sha256").write_text(sidecar)
        with pytest.raises(CheckpointError, match=r"SHA-256 mismatch|no valid checkpoint"):
            load_checkpoint(tmp_path / "c.pt")
        detected += 1
    assert detected == 25


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_with_a_warning(tmp_path, caplog):
    """R5: garbage, 0 bytes, truncated → previous; none valid → error, never a fresh start."""
    trainer = _trained_checkpoint(tmp_path)
    newest = tmp_path / "checkpoint.pt"
    good_prev = torch.load(previous_path(newest), weights_only=True)
    original = newest.read_bytes()
    for damage in (b"garbage", b"", original[: len(original) // 2]):
        newest.write_bytes(damage)
        with caplog.at_level(logging.WARNING, logger="dlopt"):
            caplog.clear()
            payload, used = load_checkpoint(newest)
        assert used == previous_path(newest)
        assert payload["state"] == good_prev["state"]
        assert len(caplog.records) == 1 and "previous checkpoint" in caplog.records[0].message
    previous_path(newest).write_bytes(b"also garbage")
    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        load_checkpoint(newest)
    for path in (newest, previous_path(newest)):
        path.unlink()
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        load_checkpoint(newest)
    assert trainer.state.epoch == 2


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    """R4: an object whose __reduce__ raises, and ENOSPC on write."""
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(
        {"format": "dlopt-checkpoint", "v": torch.ones(3), "pad": torch.zeros(500)}, path
    )
    before = path.read_bytes()

    class Exploding:
        def __reduce__(self):
            raise RuntimeError("boom while pickling")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint({"format": "dlopt-checkpoint", "v": Exploding()}, path)
    assert path.read_bytes() == before and load_checkpoint(path)[1] == path

    import dlopt._io as io_module

    real_fdopen = os.fdopen

    class FullDisk:
        """A file whose large writes fail with ENOSPC (the sidecar, ~130 bytes, gets through)."""

        def __init__(self, *args, **kwargs):
            self.inner = real_fdopen(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

        def write(self, data):
            if len(data) > 1000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.inner.write(data)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(io_module.os, "fdopen", FullDisk)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint({"format": "dlopt-checkpoint", "v": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert not path.exists() or path.read_bytes() == before, "no partial file at the final path"
    payload, _ = load_checkpoint(path)
    assert torch.equal(payload["v"], torch.ones(3))
    assert not list(tmp_path.glob(".*.tmp")), "temp files are removed"


def test_unverified_or_foreign_files_are_refused(tmp_path):
    torch.save({"format": "dlopt-checkpoint"}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="no SHA-256 sidecar"):
        load_checkpoint(tmp_path / "x.pt")
    save_checkpoint({"something": 1}, tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match="not a dlopt checkpoint"):
        load_checkpoint(tmp_path / "y.pt")
    save_checkpoint([1, 2, 3], tmp_path / "z.pt")  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(tmp_path / "z.pt")


def test_saves_do_not_reread_their_own_checkpoint_but_check_a_changed_one(tmp_path, monkeypatch):
    """Every-step checkpointing must not hash the previous file again (it wrote it); a file
    changed under it is re-hashed, and a corrupt one is not rotated into the previous slot."""
    import dlopt.train.checkpoint as ckpt

    reads = []
    real = ckpt.sha256_file
    monkeypatch.setattr(ckpt, "sha256_file", lambda p: reads.append(p) or real(p))
    path = tmp_path / "checkpoint.pt"
    for step in range(4):
        save_checkpoint({"format": "dlopt-checkpoint", "step": step, "w": torch.ones(1000)}, path)
    assert reads == []
    good_previous = previous_path(path).read_bytes()
    path.write_bytes(b"corrupted on disk")  # size and mtime change
    save_checkpoint({"format": "dlopt-checkpoint", "step": 9, "w": torch.ones(1000)}, path)
    assert path in reads
    assert previous_path(path).read_bytes() == good_previous  # the valid older file was kept
    payload, used = load_checkpoint(path)
    assert used == path and payload["step"] == 9
