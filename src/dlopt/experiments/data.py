"""The data the experiments share: seeded digits splits, optionally small and with noisy labels.

A small training set whose labels are partly random is the overfitting regime the chapter's
regularization claims are about (D1, F4, E4, B4): memorizing it costs test accuracy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from dlopt.data import Dataset, Splits, load_bundled, split_dataset

if TYPE_CHECKING:
    from dlopt.experiments.registry import Context


def noisy_labels(y: torch.Tensor, fraction: float, n_classes: int, seed: int) -> torch.Tensor:
    """Replace a `fraction` of the labels by uniformly drawn classes (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    noisy = torch.rand(len(y), generator=generator) < fraction
    y = y.clone()
    y[noisy] = torch.randint(0, n_classes, (int(noisy.sum()),), generator=generator)
    return y


def digits(seed: int, *, train_size: int | None = None, label_noise: float = 0.0) -> Splits:
    """Standardized digits splits; `label_noise` randomizes that share of the training labels."""
    splits = split_dataset(load_bundled("digits"), seed=seed, train_size=train_size)
    if label_noise == 0:
        return splits
    y = noisy_labels(splits.train.y, label_noise, 10, seed)
    train = Dataset(splits.train.X, y, "classification", "digits-noisy", 10)
    return Splits(train, splits.val, splits.test)


def data_splits(ctx: Context, *, train_size: int | None = None, label_noise: float = 0.0) -> Splits:
    """The run's data set (``ctx.data``: digits or MNIST-1D) split and standardized by its seed;
    `label_noise` randomizes that share of the training labels."""
    splits = split_dataset(load_bundled(ctx.data), seed=ctx.seed, train_size=train_size)
    if label_noise == 0:
        return splits
    train = splits.train
    y = noisy_labels(train.y, label_noise, train.n_classes or 10, ctx.derive(99))
    noisy = Dataset(train.X, y, "classification", f"{train.name}-noisy", train.n_classes)
    return Splits(noisy, splits.val, splits.test)
