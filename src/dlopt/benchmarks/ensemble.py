"""`dlopt bench ensemble`: members trained in one vmap-ed computation vs one by one.

The anchor is the plain way: M copies of a 64-64-10 MLP, each with its own Adam, trained in turn
on the same batches as the stacked run (torchensemble's pattern). dlopt's StackedEnsemble runs
one forward and one backward for all M (SPEC G4) — for these plain Linear stacks as batched
matrix products (bmm); the second contender is the same ensemble through
``torch.func.vmap`` (``fused=False``). All do the same arithmetic per member.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from dlopt.benchmarks.harness import BenchReport, Timing, benchmark, interleave, wall_clock
from dlopt.data import load_bundled, split_dataset
from dlopt.ensemble import StackedEnsemble, fit_stacked
from dlopt.nn import mlp

EPOCHS, BATCH = 2, 64


def _stacked(
    members: int, X: torch.Tensor, y: torch.Tensor, fused: bool = True
) -> Callable[[], float]:
    def run() -> None:
        torch.manual_seed(0)
        ensemble = StackedEnsemble(lambda: mlp(64, 10, (64,)), members, fused=fused)
        ensemble = ensemble.to(X.device)
        fit_stacked(ensemble, X, y, epochs=EPOCHS, batch_size=BATCH, lr=1e-3, bootstrap=False)

    return lambda: wall_clock(run, X.device)[1]


def _one_by_one(members: int, X: torch.Tensor, y: torch.Tensor) -> Callable[[], float]:
    def run() -> None:
        torch.manual_seed(0)
        for _ in range(members):
            model = mlp(64, 10, (64,)).to(X.device)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
            for _ in range(EPOCHS):
                order = torch.randperm(len(X), device=X.device)
                for start in range(0, len(X), BATCH):
                    idx = order[start : start + BATCH]
                    optimizer.zero_grad(set_to_none=True)
                    F.cross_entropy(model(X[idx]), y[idx]).backward()
                    optimizer.step()

    return lambda: wall_clock(run, X.device)[1]


@benchmark(
    "ensemble",
    "members trained in one batched computation (StackedEnsemble) vs vmap and one by one",
    devices=("cpu", "cuda"),
)
def ensemble_benchmark(repeats: int, device: torch.device) -> BenchReport:
    train = split_dataset(load_bundled("digits"), seed=0).train
    X, y = train.X.to(device), train.y.to(device)
    timings: list[Timing] = []
    notes = []
    for members in (5, 8, 20):
        fused, vmapped, alone = interleave(
            {
                f"{members} members, stacked (dlopt)": _stacked(members, X, y),
                f"{members} members, stacked by vmap": _stacked(members, X, y, fused=False),
                f"{members} members, one by one": _one_by_one(members, X, y),
            },
            repeats,
        )
        timings += [fused, vmapped, alone]
        notes.append(
            f"{members} members: one by one / stacked = {alone.median / fused.median:.2f}×, "
            f"vmap / stacked = {vmapped.median / fused.median:.2f}×"
        )
    return BenchReport(
        f"Training MLP ensembles on digits ({len(X)} samples, {EPOCHS} epochs, batch {BATCH}) "
        f"on {device}",
        "run",
        timings,
        baseline=timings[0].name,
        notes=notes,
    )
