"""Data: bundled offline sets, readers for the user's files, splits and in-memory batching."""

from dlopt.data.batching import Batches
from dlopt.data.bundled import BUNDLED, load_bundled, load_mnist1d, polynomial
from dlopt.data.dataset import Dataset, make_dataset
from dlopt.data.readers import (
    read_cifar_bin,
    read_csv,
    read_file,
    read_idx,
    read_idx_dataset,
    read_npy,
    read_npz,
)
from dlopt.data.splits import Splits, Standardizer, split_dataset

__all__ = [
    "BUNDLED",
    "Batches",
    "Dataset",
    "Splits",
    "Standardizer",
    "load_bundled",
    "load_data",
    "load_mnist1d",
    "make_dataset",
    "polynomial",
    "read_cifar_bin",
    "read_csv",
    "read_file",
    "read_idx",
    "read_idx_dataset",
    "read_npy",
    "read_npz",
    "split_dataset",
]


def load_data(name_or_path: str, *, label: str | None = None, labels: str | None = None) -> Dataset:
    """A bundled data set by name, or the user's file by path."""
    if name_or_path in BUNDLED:
        return load_bundled(name_or_path)
    if any(sep in name_or_path for sep in "/\\."):
        return read_file(name_or_path, label=label, labels=labels)
    return load_bundled(name_or_path)  # raises with the list of bundled names
