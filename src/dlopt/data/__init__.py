"""Data: bundled offline sets, readers for the user's files, splits and in-memory batching."""

from dlopt.data.batching import Batches
from dlopt.data.bundled import BUNDLED, load_bundled, load_mnist1d, polynomial
from dlopt.data.dataset import Dataset, as_task, make_dataset
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
from dlopt.data.tables import CsvTable, read_csv_table

__all__ = [
    "BUNDLED",
    "Batches",
    "CsvTable",
    "Dataset",
    "Splits",
    "Standardizer",
    "as_task",
    "load_bundled",
    "load_data",
    "load_mnist1d",
    "make_dataset",
    "polynomial",
    "read_cifar_bin",
    "read_csv",
    "read_csv_table",
    "read_file",
    "read_idx",
    "read_idx_dataset",
    "read_npy",
    "read_npz",
    "split_dataset",
]


def load_data(
    name_or_path: str,
    *,
    label: str | None = None,
    labels: str | None = None,
    task: str = "auto",
) -> Dataset:
    """A bundled data set by name, or the user's file by path, as `task` asks (see
    :func:`as_task`)."""
    if name_or_path not in BUNDLED and any(sep in name_or_path for sep in "/\\."):
        return as_task(read_file(name_or_path, label=label, labels=labels, task=task), task)
    return as_task(load_bundled(name_or_path), task)  # an unknown name: the bundled list
