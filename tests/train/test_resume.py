"""Exact resume: RELIABILITY R1 (20 stop points) and R2 (each saved piece is necessary).

The run has every source of nondeterminism a resume can get wrong: dropout, BatchNorm buffers,
stochastic input noise, per-epoch shuffling, Adam's moments, a ReduceLROnPlateau schedule (not
chainable: its state is not a function of the epoch) and early stopping's state.
"""

from __future__ import annotations

import random
import signal
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from dlopt.train import (
    Callback,
    Checkpoint,
    EarlyStopping,
    Trainer,
    load_checkpoint,
    save_checkpoint,
)

from .helpers import digits_small, stochastic_model

EPOCHS, BATCH, N_TRAIN = 3, 32, 256
STEPS_PER_EPOCH = N_TRAIN // BATCH
TOTAL = EPOCHS * STEPS_PER_EPOCH


class Trace(Callback):
    def __init__(self):
        self.losses: list[float] = []

    def on_batch_end(self, trainer):
        self.losses.append(trainer._last_loss)


class Interrupt(Callback):
    """Acts like SIGINT arriving at a given step, or right after a given epoch's end."""

    def __init__(self, step: int | None = None, epoch: int | None = None):
        self.step, self.epoch = step, epoch

    def _stop(self, trainer):
        trainer.state.interrupted = signal.SIGINT
        trainer.request_stop("test interrupt")

    def on_batch_end(self, trainer):
        if trainer.state.step == self.step:
            self._stop(trainer)

    def on_epoch_end(self, trainer):
        if trainer.state.epoch == self.epoch:
            self._stop(trainer)


@dataclass
class Run:
    trainer: Trainer
    trace: Trace
    stopper: EarlyStopping


def make_run(folder, *, seed: int = 0, interrupt: Interrupt | None = None) -> Run:
    splits = digits_small(N_TRAIN)
    model = stochastic_model(seed)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    # threshold 10 (absolute): every epoch after the first counts as "bad" → the LR drops
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, patience=0, threshold=10, threshold_mode="abs", factor=0.5
    )
    # min_delta 10: only epoch 1 "improves", so the best weights are epoch 1's
    stopper = EarlyStopping("val_loss", patience=100, min_delta=10)
    trace = Trace()
    callbacks = [stopper, trace, Checkpoint(folder)] + ([interrupt] if interrupt else [])
    trainer = Trainer(
        model,
        opt,
        scheduler=sched,
        max_epochs=EPOCHS,
        batch_size=BATCH,
        callbacks=callbacks,
        seed=0,
    )
    run = Run(trainer, trace, stopper)
    run.splits = splits  # type: ignore[attr-defined]
    return run


def fit(run: Run, resume_from=None) -> None:
    run.trainer.fit(run.splits.train, run.splits.val, resume_from=resume_from)  # type: ignore[attr-defined]


def outcome(run: Run, folder) -> dict:
    final_checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)
    return {
        "model": run.trainer.model.state_dict(),
        "trained": final_checkpoint["model"],
        "optimizer": final_checkpoint["optimizer"],
        "history": run.trainer.state.history,
        "early_stopping": run.stopper.state_dict(),
    }


def equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("reference")
    run = make_run(folder)
    fit(run)
    return outcome(run, folder), run.trace.losses


def perturb_global_rngs() -> None:
    torch.manual_seed(987654)
    np.random.seed(4321)
    random.seed(1234)


def interrupted_then_resumed(folder, interrupt: Interrupt, mutate=None):
    first = make_run(folder, interrupt=interrupt)
    fit(first)
    assert first.trainer.state.interrupted
    if mutate is not None:
        payload, _ = load_checkpoint(folder / "checkpoint.pt")
        mutate(payload)
        save_checkpoint(payload, folder / "checkpoint.pt")
    perturb_global_rngs()
    second = make_run(folder, seed=99)  # fresh objects, different initial weights
    fit(second, resume_from=folder / "checkpoint.pt")
    return outcome(second, folder), first.trace.losses + second.trace.losses


STOP_POINTS = (
    [Interrupt(step=s) for s in (1, TOTAL, STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH)]
    + [Interrupt(epoch=e) for e in (1, 2)]
    + [
        Interrupt(step=s)
        for s in random.Random(7).sample([s for s in range(2, TOTAL) if s % STEPS_PER_EPOCH], 14)
    ]
)


@pytest.mark.parametrize(
    "interrupt", STOP_POINTS, ids=lambda i: f"step{i.step}" if i.step else f"after-epoch{i.epoch}"
)
def test_resume_is_bit_identical(reference, tmp_path, interrupt):
    """R1: 20 stop points; final weights, optimizer, history, early stopping and trace equal."""
    expected, expected_trace = reference
    got, trace = interrupted_then_resumed(tmp_path, interrupt)
    assert trace == expected_trace
    assert equal(got, expected)


def _fresh_payload_piece(name: str):
    run = make_run("/nonexistent-folder-unused")
    return {
        "optimizer": run.trainer.optimizer.state_dict,
        "scheduler": run.trainer.scheduler.state_dict,
        "early_stopping": run.stopper.state_dict,
    }[name]()


def _reset_bn(payload):
    for key, value in payload["model"].items():
        if "running_mean" in key:
            payload["model"][key] = torch.zeros_like(value)
        elif "running_var" in key:
            payload["model"][key] = torch.ones_like(value)


MUTATIONS = {
    "torch RNG": lambda p: p["rng"].update(torch=torch.Generator().manual_seed(5).get_state()),
    "loader state": lambda p: p["state"].update(batch=0),
    "optimizer state": lambda p: p.update(optimizer=_fresh_payload_piece("optimizer")),
    "scheduler state": lambda p: p.update(scheduler=_fresh_payload_piece("scheduler")),
    "BN buffers": _reset_bn,
    "early-stopping state": lambda p: p["callbacks"].update(
        {"EarlyStopping#0": _fresh_payload_piece("early_stopping")}
    ),
}


@pytest.mark.parametrize("piece", list(MUTATIONS))
def test_dropping_any_saved_piece_breaks_the_resume(reference, tmp_path, piece):
    """R2: the R1 check is not vacuous: each of the six pieces is needed (6/6 detected)."""
    expected, expected_trace = reference
    got, trace = interrupted_then_resumed(
        tmp_path, Interrupt(step=STEPS_PER_EPOCH + 3), MUTATIONS[piece]
    )
    assert not (equal(got, expected) and trace == expected_trace), f"dropping {piece} went unseen"


def test_resume_refuses_a_different_run(tmp_path):
    """R6: another seed, batch size or data set is refused, naming the mismatch."""
    from dlopt.errors import CheckpointError

    first = make_run(tmp_path, interrupt=Interrupt(step=3))
    fit(first)
    other = make_run(tmp_path)
    other.trainer.seed = 1
    with pytest.raises(CheckpointError, match="seed 0 but this run has 1"):
        fit(other, resume_from=tmp_path / "checkpoint.pt")
    other = make_run(tmp_path)
    other.splits = digits_small(128)  # type: ignore[attr-defined]
    with pytest.raises(CheckpointError, match="data"):
        fit(other, resume_from=tmp_path / "checkpoint.pt")
