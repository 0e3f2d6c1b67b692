"""`dlopt bench trainer`: Trainer.fit against hand-written PyTorch loops doing the same work.

Same model (64-256-256-10 ReLU MLP), data (digits, standardized training split), batch size
(64), optimizer (Adam 1e-3) and epochs; every variant shuffles each epoch and reports the
epoch's training loss and accuracy. The Trainer additionally checks loss and gradients for
NaN/inf before every step. Anchors: an index-slicing loop (the fastest plain loop) and the
textbook ``DataLoader(TensorDataset)`` loop; the Trainer runs on the tensors and on that
DataLoader.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlopt.benchmarks.harness import BenchReport, benchmark, interleave
from dlopt.data import load_bundled, split_dataset
from dlopt.nn import mlp
from dlopt.train import Trainer

EPOCHS = 5
BATCH = 64


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return mlp(64, 10, (256, 256))


def _plain_loop(X: torch.Tensor, y: torch.Tensor, epoch_batches: Any) -> float:
    """The textbook loop, per epoch: shuffle, step on each batch, track loss and accuracy."""
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(EPOCHS):
        model.train()
        total, correct = 0.0, 0
        for xb, yb in epoch_batches():
            optimizer.zero_grad(set_to_none=True)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
            correct += int((out.argmax(-1) == yb).sum())
        _epoch_metrics = (total / len(X), correct / len(X))
    return (time.perf_counter() - start) / EPOCHS


def _hand_loop(X: torch.Tensor, y: torch.Tensor) -> float:
    """Index slicing: the fastest plain loop for in-memory data."""
    generator = torch.Generator().manual_seed(0)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(X), generator=generator)
        for i in range(0, len(X), BATCH):
            index = order[i : i + BATCH]
            yield X[index], y[index]

    return _plain_loop(X, y, batches)


def _dataloader_loop(X: torch.Tensor, y: torch.Tensor) -> float:
    loader = DataLoader(
        TensorDataset(X, y),
        batch_size=BATCH,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    return _plain_loop(X, y, lambda: iter(loader))


def _trainer(X: torch.Tensor, y: torch.Tensor, loader: bool = False) -> float:
    """Trainer.fit on the tensors (index slicing), or on the textbook DataLoader."""
    model = _model()
    trainer = Trainer(
        model, torch.optim.Adam(model.parameters(), lr=1e-3), max_epochs=EPOCHS, batch_size=BATCH
    )
    train: Any = (X, y)
    if loader:
        generator = torch.Generator().manual_seed(0)
        train = DataLoader(TensorDataset(X, y), batch_size=BATCH, shuffle=True, generator=generator)
    start = time.perf_counter()
    trainer.fit(train)
    return (time.perf_counter() - start) / EPOCHS


@benchmark("trainer", "Trainer.fit vs a hand-written PyTorch loop (digits MLP, per epoch)")
def trainer_benchmark(repeats: int, device: torch.device) -> BenchReport:
    train = split_dataset(load_bundled("digits"), seed=0).train
    X, y = train.X, train.y
    timings = interleave(
        {
            "dlopt Trainer.fit": lambda: _trainer(X, y),
            "dlopt Trainer.fit (DataLoader)": lambda: _trainer(X, y, loader=True),
            "hand-written loop (index slicing)": lambda: _hand_loop(X, y),
            "hand-written loop (DataLoader)": lambda: _dataloader_loop(X, y),
        },
        repeats,
    )
    return BenchReport(
        f"Trainer vs plain PyTorch: digits ({len(X)} samples), MLP 64-256-256-10, "
        f"batch {BATCH}, Adam, {EPOCHS} epochs per call",
        "epoch",
        timings,
        baseline="hand-written loop (index slicing)",
    )
