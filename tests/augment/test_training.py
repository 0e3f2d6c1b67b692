"""The Trainer's `augment=`: training batches only, reproducible from (seed, step), exact on
resume, and a wrong output is named."""

from __future__ import annotations

import pytest
import torch

from dlopt.augment import Compose, InputNoise, RandomAffine
from dlopt.nn import cnn
from dlopt.train import Checkpoint, Trainer

from ..train.helpers import digits_small
from ..train.test_resume import Interrupt


class Counting:
    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __call__(self, x, generator):
        self.calls += 1
        return self.inner(x, generator)


def augmentation():
    return Compose([RandomAffine(rotation=10, shift=1, shape=(1, 8, 8)), InputNoise(0.05)])


def run(folder=None, interrupt=None, resume=False, epochs=2, aug=None):
    splits = digits_small(128)
    torch.manual_seed(0)
    model = cnn((1, 8, 8), 10, channels=(4,), hidden=(16,))
    callbacks = [Checkpoint(folder)] if folder else []
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), 1e-2),
        max_epochs=epochs,
        batch_size=32,
        callbacks=callbacks + ([interrupt] if interrupt else []),
        augment=aug or augmentation(),
    )
    trainer.fit(splits.train, splits.val, resume_from=folder / "checkpoint.pt" if resume else None)
    return trainer


def test_augment_sees_training_batches_only():
    counting = Counting(augmentation())
    trainer = run(aug=counting, epochs=1)
    assert counting.calls == 4  # 128 samples / 32, and no call for validation
    splits = digits_small(128)
    trainer.evaluate(splits.test)
    trainer.predict(splits.test.X)
    assert counting.calls == 4


def test_augmented_runs_are_reproducible_and_differ_from_plain_ones():
    a, b = run(), run()
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)
    plain = run(aug=lambda x, generator: x)
    assert not all(
        torch.equal(p, q)
        for p, q in zip(a.model.parameters(), plain.model.parameters(), strict=True)
    )


def test_resume_draws_the_same_augmentations(tmp_path):
    torch.set_num_threads(1)
    whole = run(tmp_path / "whole")
    run(tmp_path / "cut", interrupt=Interrupt(step=5))
    resumed = run(tmp_path / "cut", resume=True)
    for p, q in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_wrong_augmentation_is_named():
    with pytest.raises(ValueError, match=r"inputs' shape \(32, 64\); got .*\(32, 10\)"):
        run(aug=lambda x, generator: x[:, :10], epochs=1)
    with pytest.raises(TypeError, match="callable"):
        Trainer(torch.nn.Linear(2, 2), augment=3)  # type: ignore[arg-type]
