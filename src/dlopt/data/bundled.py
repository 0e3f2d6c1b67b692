"""Bundled, offline data sets: scikit-learn's, generated MNIST-1D, synthetic polynomials."""

from __future__ import annotations

import gzip
import importlib.util
import os
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlopt._io import write_with_atomic
from dlopt._validation import did_you_mean
from dlopt.data.dataset import Dataset, Task, make_dataset
from dlopt.errors import DataError


@dataclass(frozen=True)
class BundledInfo:
    name: str
    description: str
    loader: Callable[[], Dataset]


_SKLEARN_FILES = {
    "digits": "digits.csv.gz",
    "breast_cancer": "breast_cancer.csv",
    "wine": "wine_data.csv",
}


def _sklearn_file(name: str) -> Callable[[], Dataset]:
    """scikit-learn's own data file read as its `load_<name>` reads it, without importing
    scikit-learn (about a second of start-up, which a refused resume or a short run would
    otherwise pay): `digits.csv.gz` is rows of 64 pixels and the label; the others start with
    a line ``n_samples,n_features,class names…``."""

    def load() -> Dataset:
        spec = importlib.util.find_spec("sklearn")  # locates the package, runs none of it
        if spec is None or not spec.submodule_search_locations:
            raise DataError("needs scikit-learn, which holds this data set", source=name)
        path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / _SKLEARN_FILES[name]
        if name == "digits":
            with gzip.open(path, "rt", encoding="utf-8") as f:
                table = np.loadtxt(f, delimiter=",")
            X, y, names = table[:, :-1], table[:, -1].astype(int), [str(i) for i in range(10)]
        else:
            with path.open(encoding="utf-8") as f:
                header = f.readline().strip().split(",")
                table = np.loadtxt(f, delimiter=",", ndmin=2)
            X, y, names = table[:, :-1], table[:, -1].astype(int), header[2:]
        data = make_dataset(X, y, name=name, task="classification")
        return Dataset(data.X, data.y, data.task, name, data.n_classes, tuple(names))

    return load


def _sklearn(name: str) -> Callable[[], Dataset]:
    def load() -> Dataset:
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{name}")()
        task: Task = "regression" if name == "diabetes" else "classification"
        data = make_dataset(bunch.data, bunch.target, name=name, task=task)
        names = tuple(str(n) for n in getattr(bunch, "target_names", ()))
        return Dataset(data.X, data.y, data.task, name, data.n_classes, names)

    return load


def cache_dir() -> Path:
    """Where generated data sets are cached: ``$DLOPT_CACHE`` or ``~/.cache/dlopt``."""
    return Path(os.environ.get("DLOPT_CACHE", Path.home() / ".cache" / "dlopt"))


def load_mnist1d(num_samples: int = 5000, seed: int = 42) -> Dataset:
    """MNIST-1D (Greydanus 2020) generated offline by ``mnist1d.data.make_dataset``, cached.

    ``mnist1d.data.get_dataset`` tries the network first; this never calls it. The generator
    reseeds numpy's and Python's global RNGs, so their states are saved and restored around it.
    """
    path = cache_dir() / f"mnist1d-{num_samples}-{seed}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as archive:
                return make_dataset(
                    archive["X"], archive["y"], name="mnist1d", task="classification", n_classes=10
                )
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)  # a damaged cache is regenerated, not trusted
    from mnist1d.data import get_dataset_args
    from mnist1d.data import make_dataset as generate

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        raw = generate(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    X = np.concatenate([raw["x"], raw["x_test"]]).astype(np.float32)
    y = np.concatenate([raw["y"], raw["y_test"]]).astype(np.int64)
    write_with_atomic(path, lambda handle: np.savez(handle, X=X, y=y))
    return make_dataset(X, y, name="mnist1d", task="classification", n_classes=10)


def polynomial(
    n: int = 40,
    noise: float = 0.1,
    *,
    coefficients: tuple[float, ...] = (0.0, 1.0, 0.0, -1.5),
    x_range: tuple[float, float] = (-1.0, 1.0),
    function: Callable[[np.ndarray], np.ndarray] | None = None,
    seed: int = 0,
) -> Dataset:
    """Synthetic 1-D regression y = f(x) + N(0, noise²), x uniform on `x_range`.

    f is ``function`` when given, else the polynomial Σ coefficients[k]·x^k.
    """
    if n < 1:
        raise DataError(f"polynomial(n=...) must be >= 1; got {n}", source="polynomial")
    if not noise >= 0:
        raise DataError(f"polynomial(noise=...) must be >= 0; got {noise}", source="polynomial")
    rng = np.random.default_rng(seed)
    x = rng.uniform(*x_range, size=n)
    f = function or (lambda t: np.polynomial.polynomial.polyval(t, coefficients))
    y = f(x) + noise * rng.standard_normal(n)
    return make_dataset(x[:, None], y, name="polynomial", task="regression")


BUNDLED: dict[str, BundledInfo] = {
    "digits": BundledInfo(
        "digits",
        "8×8 handwritten digits, 1797 × 64, 10 classes (scikit-learn)",
        _sklearn_file("digits"),
    ),
    "breast_cancer": BundledInfo(
        "breast_cancer",
        "Wisconsin breast cancer, 569 × 30, 2 classes (scikit-learn)",
        _sklearn_file("breast_cancer"),
    ),
    "wine": BundledInfo(
        "wine", "wine cultivars, 178 × 13, 3 classes (scikit-learn)", _sklearn_file("wine")
    ),
    "diabetes": BundledInfo(
        "diabetes",
        "diabetes progression, 442 × 10, regression (scikit-learn)",
        _sklearn("diabetes"),
    ),
    "mnist1d": BundledInfo(
        "mnist1d", "MNIST-1D, 5000 × 40, 10 classes (generated offline)", load_mnist1d
    ),
    "polynomial": BundledInfo(
        "polynomial", "synthetic 1-D polynomial regression, 40 × 1", polynomial
    ),
}


def load_bundled(name: str) -> Dataset:
    """Load a bundled data set by name (see :data:`BUNDLED`)."""
    if name not in BUNDLED:
        raise DataError(
            f"unknown data set; bundled: {', '.join(BUNDLED)}." + did_you_mean(name, BUNDLED),
            source=name,
        )
    return BUNDLED[name].loader()
