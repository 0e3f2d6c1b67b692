"""2 gloo ranks with batch B/2 each train as one process with batch B (float64, to 1e-6)."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

import pytest
import torch
from torch import nn

from dlopt.errors import TrainingDiverged
from dlopt.train import Callback, EarlyStopping, Trainer
from dlopt.train.distributed import DataParallel

f64 = torch.float64


class StopOnRank(Callback):
    """Asks to stop after `epoch` epochs, on one rank only."""

    def __init__(self, rank: int, epoch: int) -> None:
        self.rank, self.epoch = rank, epoch

    def on_epoch_end(self, trainer: Trainer) -> None:
        here = trainer.distributed.rank if trainer.distributed is not None else 0
        if here == self.rank and trainer.state.epoch >= self.epoch:
            trainer.request_stop("asked on one rank")


class SignalOnRank(Callback):
    """Sends SIGTERM to this process after step `step`, on one rank only."""

    def __init__(self, rank: int, step: int) -> None:
        self.rank, self.step = rank, step

    def on_batch_end(self, trainer: Trainer) -> None:
        assert trainer.distributed is not None
        if trainer.distributed.rank == self.rank and trainer.state.step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def _fit(
    parallel: bool, callbacks: tuple[Callback, ...] = (), poison: int | None = None
) -> dict[str, Any]:
    torch.manual_seed(0)
    X = torch.randn(203, 5, dtype=torch.float64)  # batches of 32 and a last one of 11
    if poison is not None:
        X[poison] = float("inf")  # one sample, so one rank's shard, turns the loss non-finite
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).long()
    val = (X[:50] + 0.1, y[:50])
    model = nn.Sequential(nn.Linear(5, 16, dtype=f64), nn.Tanh(), nn.Linear(16, 2, dtype=f64))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    trainer = Trainer(
        model,
        optimizer,
        max_epochs=4,
        batch_size=32,
        seed=3,
        callbacks=callbacks,
        distributed=DataParallel() if parallel else None,
    )
    try:
        with trainer.distributed.signals() if trainer.distributed else contextlib.nullcontext():
            trainer.fit((X, y), val)
    except TrainingDiverged as exc:
        return {"diverged": (exc.epoch, exc.step), "weights": _flat(model)}
    return {
        "weights": _flat(model),
        "history": trainer.state.history,
        "epochs": trainer.state.epoch,
        "collectives": trainer.distributed.collectives if trainer.distributed else 0,
        "steps": trainer.state.step,
        "interrupted": trainer.state.interrupted,
    }


def _fit_dropout(epochs: int, folder, resume: bool = False) -> dict[str, Any]:
    """A dropout MLP: the first batch's dropout mask on this rank, and the final weights."""
    import torch.distributed as dist

    from dlopt.train import Checkpoint

    torch.manual_seed(0)
    X = torch.randn(128, 5, dtype=torch.float64)
    y = (X[:, 0] > 0).long()
    model = nn.Sequential(
        nn.Linear(5, 32, dtype=f64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 2, dtype=f64)
    )
    masks: list[torch.Tensor] = []

    def dropped(module: nn.Module, inputs: tuple[torch.Tensor], out: torch.Tensor) -> None:
        if module.training:  # where dropout zeroed a unit that ReLU had let through
            masks.append(torch.stack([out == 0, inputs[0] != 0]))

    model[2].register_forward_hook(dropped)
    writes = dist.get_rank() == 0 and not resume
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        max_epochs=epochs,
        batch_size=33,  # shards of 17 and 16: the ranks draw different amounts
        seed=5,
        callbacks=(Checkpoint(folder, save_best=False),) if writes else (),
        distributed=DataParallel(),
    )
    trainer.fit((X, y), resume_from=folder / "checkpoint.pt" if resume else None)
    dist.barrier()
    return {"mask": masks[0], "weights": _flat(model)}


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def on_each_rank(rank: int, world: int, folder) -> dict[str, Any]:
    return {
        "dropout": _fit_dropout(4, folder / "full"),
        "dropout_half": _fit_dropout(2, folder / "half"),
        "dropout_resumed": _fit_dropout(4, folder / "half", resume=True),
        "plain": _fit(True),
        "stop": _fit(True, (StopOnRank(1, 2),)),
        "early": _fit(True, (EarlyStopping("val_loss", patience=1, min_delta=10.0),)),
        "nan": _fit(True, poison=150),
        "sigterm": _fit(True, (SignalOnRank(1, 9),)),
    }


@pytest.fixture
def ranks(spawned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["data_parallel"] for r in spawned]


def test_two_ranks_train_as_one_process(ranks: list[dict[str, Any]]) -> None:
    single = _fit(False)
    for r, result in enumerate(ranks):
        torch.testing.assert_close(
            result["plain"]["weights"], single["weights"], rtol=0, atol=1e-6, msg=f"rank {r}"
        )
        for ours, theirs in zip(result["plain"]["history"], single["history"], strict=True):
            assert ours.keys() == theirs.keys()
            for key in ours:
                assert ours[key] == pytest.approx(theirs[key], rel=1e-9, abs=1e-12), key
    assert torch.equal(ranks[0]["plain"]["weights"], ranks[1]["plain"]["weights"])
    # the guard's agreement per step, the sums and the stop flag per epoch
    assert ranks[0]["plain"]["collectives"] == ranks[0]["plain"]["steps"] + 2 * 4


def test_a_stop_on_one_rank_stops_every_rank(ranks: list[dict[str, Any]]) -> None:
    assert [r["stop"]["epochs"] for r in ranks] == [2, 2]
    assert [r["early"]["epochs"] for r in ranks] == [2, 2]  # patience 1, never improves by 10
    assert torch.equal(ranks[0]["stop"]["weights"], ranks[1]["stop"]["weights"])


def test_a_nonfinite_loss_on_one_rank_stops_every_rank_at_one_step(
    ranks: list[dict[str, Any]],
) -> None:
    single = _fit(False, poison=150)
    assert [r["nan"]["diverged"] for r in ranks] == [single["diverged"]] * 2
    assert torch.equal(ranks[0]["nan"]["weights"], ranks[1]["nan"]["weights"])


def test_sigterm_to_one_rank_stops_every_rank_at_one_step(ranks: list[dict[str, Any]]) -> None:
    # rank 1 is signalled after step 9; the ranks agree on it at step 10's guard
    assert [(r["sigterm"]["steps"], r["sigterm"]["interrupted"]) for r in ranks] == [
        (10, signal.SIGTERM)
    ] * 2
    assert torch.equal(ranks[0]["sigterm"]["weights"], ranks[1]["sigterm"]["weights"])


def test_ranks_draw_their_own_dropout_and_resume_bit_identically(
    ranks: list[dict[str, Any]],
) -> None:
    """Each rank's dropout masks are its own (seeded from seed, rank, epoch and batch), so a
    resumed run draws what the uninterrupted one drew, on every rank."""
    (zero0, live0), (zero1, live1) = (r["dropout"]["mask"][:, :16] for r in ranks)
    both = live0 & live1
    assert both.sum() > 100
    assert not torch.equal(zero0[both], zero1[both]), "both ranks drew the same dropout mask"
    for r, result in enumerate(ranks):
        assert torch.equal(result["dropout_resumed"]["weights"], result["dropout"]["weights"]), r
    assert torch.equal(ranks[0]["dropout"]["weights"], ranks[1]["dropout"]["weights"])
