"""The in-memory data set every part of dlopt passes around."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from dlopt.errors import DataError

Task = Literal["classification", "regression"]
MAX_CLASSES = (
    100_000  # a label beyond this is a mistake, not a class (the output layer would not fit)
)


@dataclass(frozen=True)
class Dataset:
    """Features `X` (n, *feature_shape) float32 and targets `y` (n,) (int64 labels or float32).

    Built through :func:`make_dataset`, which checks every invariant so that a trainer never
    sees NaN features, a label out of range, or X and y of different lengths.
    """

    X: Tensor
    y: Tensor
    task: Task
    name: str
    n_classes: int = 0  # 0 for regression
    class_names: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(np.prod(self.X.shape[1:]))

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])

    def subset(self, index: Tensor, name: str | None = None) -> Dataset:
        return Dataset(
            self.X[index],
            self.y[index],
            self.task,
            name or self.name,
            self.n_classes,
            self.class_names,
        )

    def fingerprint(self) -> str:
        """SHA-256 of the arrays: a resumed run refuses a data set other than its own."""
        digest = hashlib.sha256()
        for array in (self.X, self.y):
            digest.update(str((tuple(array.shape), str(array.dtype))).encode())
            digest.update(array.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]


FLOAT32_MAX = float(np.finfo(np.float32).max)


def make_dataset(
    X: np.ndarray,
    y: np.ndarray,
    *,
    name: str,
    task: Task | None = None,
    source: str | None = None,
    n_classes: int | None = None,
) -> Dataset:
    """Validate arrays and build a :class:`Dataset`.

    `task` defaults to classification when `y` holds integral values with at most
    max(20, √n) distinct ones, and to regression otherwise. Raises :class:`DataError` naming `source`.
    """
    src = source or name
    X = np.asarray(X)
    y = np.asarray(y)
    if X.dtype == object or y.dtype == object:
        raise DataError("arrays of Python objects are not data", source=src)
    if X.ndim < 2:
        raise DataError(
            f"features must be 2-D or more (samples first); got shape {X.shape}", source=src
        )
    if y.ndim != 1:
        raise DataError(f"labels must be 1-D; got shape {y.shape}", source=src)
    if len(X) == 0:
        raise DataError("no samples", source=src)
    if len(X) != len(y):
        raise DataError(f"{len(X)} feature rows but {len(y)} labels", source=src)
    for what, array in (("features", X), ("labels", y)):
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise DataError(f"{what} must be numeric; got dtype {array.dtype}", source=src)
        if np.issubdtype(array.dtype, np.complexfloating):
            raise DataError(f"{what} must be real; got dtype {array.dtype}", source=src)
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            bad = int(np.flatnonzero((~np.isfinite(array.reshape(len(array), -1))).any(1))[0])
            raise DataError(f"{what} contain NaN or inf (first in sample {bad})", source=src)
        if array.size and array.dtype.itemsize > 4 and np.abs(array).max() > FLOAT32_MAX:
            # stored as float32 (labels too, for regression): larger values would become inf
            where = np.abs(array.reshape(len(array), -1)).max(1) > FLOAT32_MAX
            raise DataError(
                f"{what} exceed the float32 range (±{FLOAT32_MAX:.3g}; first in sample "
                f"{int(np.flatnonzero(where)[0])})",
                source=src,
            )
    if task is None:
        integral = np.issubdtype(y.dtype, np.integer) or bool(np.all(np.mod(y, 1) == 0))
        # integral labels with few distinct values are classes (diabetes' integer targets are not)
        few = len(np.unique(y)) <= max(20, int(np.sqrt(len(y))))
        task = "classification" if integral and few else "regression"
    if task == "classification":
        if not (np.issubdtype(y.dtype, np.integer) or np.all(np.mod(y, 1) == 0)):
            raise DataError("class labels must be integers", source=src)
        if np.abs(y).max() >= 2**31:
            raise DataError(
                f"class label {y[np.argmax(np.abs(y))]:.4g} is out of range", source=src
            )
        labels = y.astype(np.int64)
        if labels.min() < 0:
            raise DataError(f"class labels must be >= 0; found {int(labels.min())}", source=src)
        k = int(labels.max()) + 1 if n_classes is None else n_classes
        if k > MAX_CLASSES:
            raise DataError(
                f"label {int(labels.max())} implies {k} classes; at most {MAX_CLASSES}", source=src
            )
        if labels.max() >= k:
            raise DataError(f"label {int(labels.max())} out of range for {k} classes", source=src)
        y_t = torch.from_numpy(labels)
    else:
        k = 0
        y_t = torch.from_numpy(y.astype(np.float32))
    X_t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    return Dataset(X_t, y_t, task, name, k)


def as_task(data: Dataset, task: str) -> Dataset:
    """`data` as a `task` (``"auto"``: as it is): integer classes become regression targets,
    integral regression targets become classes. (A CSV's class names are refused as
    regression targets by :func:`~dlopt.data.read_csv` itself.)"""
    if task == "auto" or task == data.task:
        return data
    if task == "regression":
        return Dataset(data.X, data.y.float(), "regression", data.name)
    if task == "classification":
        converted = make_dataset(
            data.X.numpy(), data.y.double().numpy(), name=data.name, task="classification"
        )
        return Dataset(data.X, converted.y, "classification", data.name, converted.n_classes)
    raise DataError(
        f"unknown task {task!r}; known: auto, classification, regression", source=data.name
    )
