"""Trainer.fit on a DataLoader or any re-iterable of (x, y) batches (issue 18, part 3)."""

from __future__ import annotations

import random
import signal

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlopt.nn import mlp
from dlopt.train import Callback, Checkpoint, Trainer

from .helpers import digits_small, stochastic_model

EPOCHS, BATCH = 3, 32


def _data():
    splits = digits_small(256)
    return splits.train.X.float(), splits.train.y


def _loader(X, y, seed: int | None = 7, shuffle: bool = True) -> DataLoader:
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(X, y), batch_size=BATCH, shuffle=shuffle, generator=generator)


def test_dataloader_fit_equals_a_plain_torch_loop_over_the_same_loader():
    X, y = _data()
    torch.manual_seed(0)
    model = mlp(64, 10, (32,))
    reference = mlp(64, 10, (32,))
    reference.load_state_dict(model.state_dict())
    Trainer(
        model, torch.optim.Adam(model.parameters(), 1e-2), max_epochs=EPOCHS, batch_size=BATCH
    ).fit(_loader(X, y))
    optimizer = torch.optim.Adam(reference.parameters(), 1e-2)
    loader = _loader(X, y)
    for _ in range(EPOCHS):
        for xb, yb in loader:
            optimizer.zero_grad()
            F.cross_entropy(reference(xb), yb).backward()
            optimizer.step()
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def test_a_list_of_batches_is_a_source_and_matches_in_memory_unshuffled_batches():
    X, y = _data()
    batches = [(X[i : i + BATCH], y[i : i + BATCH]) for i in range(0, len(X), BATCH)]
    torch.manual_seed(0)
    a = mlp(64, 10, (32,))
    b = mlp(64, 10, (32,))
    b.load_state_dict(a.state_dict())
    Trainer(a, torch.optim.SGD(a.parameters(), 0.1), max_epochs=2).fit(batches)
    Trainer(b, torch.optim.SGD(b.parameters(), 0.1), max_epochs=2).fit(
        _loader(X, y, seed=None, shuffle=False)
    )
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


class Interrupt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, trainer):
        if trainer.state.step == self.step:
            trainer.state.interrupted = signal.SIGINT
            trainer.request_stop("test interrupt")


def _stochastic_run(folder, X, y, interrupt=None):
    model = stochastic_model(0)
    callbacks = [Checkpoint(folder)] + ([interrupt] if interrupt else [])
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), 3e-3),
        max_epochs=EPOCHS,
        batch_size=BATCH,
        callbacks=callbacks,
    )
    return trainer, _loader(X.double(), y, seed=None)  # no generator: the trainer gives one


@pytest.mark.parametrize("stop_step", [3, 8, 13])  # mid-epoch, at an epoch's end, mid-epoch
def test_dataloader_resume_is_exact(tmp_path, stop_step):
    X, y = _data()
    reference, loader = _stochastic_run(tmp_path / "ref", X, y)
    reference.fit(loader)
    first, loader = _stochastic_run(tmp_path / "run", X, y, Interrupt(stop_step))
    first.fit(loader)
    assert first.state.interrupted and first.state.step == stop_step
    torch.manual_seed(987654)
    np.random.seed(4321)
    random.seed(1234)
    resumed, loader = _stochastic_run(tmp_path / "run", X, y)
    resumed.fit(loader, resume_from=tmp_path / "run" / "checkpoint.pt")
    assert resumed.state.step == reference.state.step
    assert resumed.state.history == reference.state.history
    for key, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def test_evaluate_takes_a_loader_and_agrees_with_in_memory():
    X, y = _data()
    torch.manual_seed(0)
    trainer = Trainer(mlp(64, 10, (32,)), metrics=["f1_macro"])
    in_memory = trainer.evaluate((X, y))
    streamed = trainer.evaluate(_loader(X, y, seed=None, shuffle=False))
    assert streamed == pytest.approx(in_memory, rel=1e-6)  # float32 batch sums


@pytest.mark.parametrize(
    ("train", "got"),
    [
        (iter([(torch.zeros(2, 64), torch.zeros(2, dtype=torch.long))]), "an iterator"),
        (42, "got int"),
        (torch.zeros(4, 64), "got Tensor"),
    ],
)
def test_other_kinds_are_a_type_error_naming_the_accepted_ones(train, got):
    trainer = Trainer(mlp(64, 10, (8,)), max_epochs=1)
    with pytest.raises(TypeError, match=rf"Trainer.fit\(train=...\) must be .*DataLoader.*{got}"):
        trainer.fit(train)


def test_a_batch_that_is_not_a_pair_is_a_type_error():
    trainer = Trainer(mlp(64, 10, (8,)), max_epochs=1)
    with pytest.raises(TypeError, match=r"must yield \(x, y\) batches"):
        trainer.fit([torch.zeros(2, 64)])


def test_a_bad_val_is_a_type_error_before_training():
    X, y = _data()
    trainer = Trainer(mlp(64, 10, (8,)), max_epochs=1)
    with pytest.raises(TypeError, match=r"Trainer.fit\(val=...\) must be .*got int"):
        trainer.fit((X, y), 3)
    assert trainer.state.step == 0


def test_fit_validates_on_a_loader_as_on_tensors():
    X, y = _data()
    runs = []
    for val in [(X[:64], y[:64]), _loader(X[:64], y[:64], seed=None, shuffle=False)]:
        torch.manual_seed(0)
        model = mlp(64, 10, (16,))
        trainer = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), max_epochs=2)
        runs.append(trainer.fit((X, y), val).history)
    for ours, theirs in zip(*runs, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-6)
