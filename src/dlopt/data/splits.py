"""Seeded train/validation/test splits and standardization fitted on the training split only."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dlopt._validation import check_fraction
from dlopt.data.dataset import Dataset
from dlopt.errors import DataError, InvalidParameterError


@dataclass(frozen=True)
class Splits:
    train: Dataset
    val: Dataset | None
    test: Dataset
    transform: Standardizer | None = None  # applied to all three, fitted on train

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "val": len(self.val) if self.val else 0,
            "test": len(self.test),
        }


@dataclass(frozen=True)
class Standardizer:
    """x ↦ (x − mean) / std, per feature, with statistics from the training split."""

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, X: Tensor) -> Standardizer:
        X64 = X.double()
        std = X64.std(0, unbiased=False)
        std = torch.where(std > 1e-12, std, torch.ones_like(std))  # constant features stay put
        return cls(X64.mean(0).to(X.dtype), std.to(X.dtype))

    def __call__(self, data: Dataset) -> Dataset:
        X = (data.X - self.mean) / self.std
        return Dataset(X, data.y, data.task, data.name, data.n_classes, data.class_names)


def split_dataset(
    data: Dataset,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    seed: int = 0,
    standardize: bool = True,
    train_size: int | None = None,
) -> Splits:
    """Shuffle with `seed`, then cut test, validation and training parts (stratified by class).

    `train_size` keeps only the first `train_size` training samples (small-data experiments).
    Standardization statistics come from the training part alone, so no test information leaks.
    """
    check_fraction("test_fraction", test_fraction, caller="split_dataset", low_open=True)
    check_fraction("val_fraction", val_fraction, caller="split_dataset")
    if val_fraction + test_fraction >= 1:
        raise InvalidParameterError(
            "split_dataset(val_fraction, test_fraction) must sum to < 1; got "
            f"{val_fraction} + {test_fraction}."
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=generator)
    groups = (
        [order[data.y[order] == c] for c in torch.unique(data.y)]
        if data.task == "classification"
        else [order]
    )  # stratified by class
    parts: dict[str, list[Tensor]] = {"train": [], "val": [], "test": []}
    for group in groups:
        n_test = round(len(group) * test_fraction)
        n_val = round(len(group) * val_fraction)
        parts["test"].append(group[:n_test])
        parts["val"].append(group[n_test : n_test + n_val])
        parts["train"].append(group[n_test + n_val :])
    index = {}
    for key, pieces in parts.items():
        joined = torch.cat(pieces)
        index[key] = joined[torch.randperm(len(joined), generator=generator)]
    if not len(index["train"]) or not len(index["test"]):
        raise DataError(f"too few samples ({len(data)}) to split", source=data.name)
    train = data.subset(index["train"])
    if train_size is not None:
        if not 1 <= train_size <= len(train):
            raise InvalidParameterError(
                f"split_dataset(train_size=...) must lie in [1, {len(train)}]; got {train_size}."
            )
        train = data.subset(index["train"][:train_size])
    val = data.subset(index["val"]) if len(index["val"]) else None
    test = data.subset(index["test"])
    if standardize:
        scale = Standardizer.fit(train.X)
        train, test = scale(train), scale(test)
        val = scale(val) if val is not None else None
        return Splits(train, val, test, scale)
    return Splits(train, val, test)
