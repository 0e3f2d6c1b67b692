import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn import datasets as skd

from dlopt.data import BUNDLED, load_bundled, load_data, load_mnist1d, polynomial
from dlopt.errors import DataError


@pytest.mark.parametrize(
    ("name", "loader", "task"),
    [
        ("digits", skd.load_digits, "classification"),
        ("breast_cancer", skd.load_breast_cancer, "classification"),
        ("wine", skd.load_wine, "classification"),
        ("diabetes", skd.load_diabetes, "regression"),
    ],
)
def test_sklearn_sets_equal_the_source(name, loader, task):
    data, bunch = load_bundled(name), loader()
    assert data.task == task
    np.testing.assert_array_equal(data.X.numpy(), bunch.data.astype(np.float32))
    np.testing.assert_array_equal(data.y.numpy(), bunch.target.astype(data.y.numpy().dtype))
    if task == "classification":
        assert data.n_classes == len(np.unique(bunch.target))
        assert data.y.dtype == torch.int64
        assert data.class_names == tuple(str(n) for n in bunch.target_names)


def test_the_classification_sets_load_without_importing_sklearn():
    code = (
        "import sys; from dlopt.data import load_bundled\n"
        "for name in ('digits', 'breast_cancer', 'wine'): load_bundled(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'matplotlib')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_mnist1d_is_generated_offline_cached_and_keeps_global_rngs(tmp_path, monkeypatch):
    monkeypatch.setenv("DLOPT_CACHE", str(tmp_path))
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    data = load_mnist1d()
    assert (np.random.rand(), random.random()) == (expected_np, expected_py)
    assert data.X.shape == (5000, 40) and data.n_classes == 10
    assert sorted(data.y.bincount().tolist()) == [500] * 10
    assert list(tmp_path.glob("mnist1d-*.npz"))
    again = load_mnist1d()  # from the cache
    assert torch.equal(again.X, data.X) and torch.equal(again.y, data.y)


def test_a_damaged_mnist1d_cache_is_regenerated(tmp_path, monkeypatch):
    monkeypatch.setenv("DLOPT_CACHE", str(tmp_path))
    first = load_mnist1d(num_samples=200)
    (cache,) = tmp_path.glob("mnist1d-*.npz")
    cache.write_bytes(b"garbage")
    assert torch.equal(load_mnist1d(num_samples=200).X, first.X)


def test_polynomial_is_the_stated_function_plus_noise():
    clean = polynomial(n=50, noise=0.0, coefficients=(1.0, -2.0, 0.5), seed=3)
    x = clean.X[:, 0].double()
    torch.testing.assert_close(clean.y.double(), (1 - 2 * x + 0.5 * x**2), rtol=1e-6, atol=1e-6)
    noisy = polynomial(n=2000, noise=0.3, coefficients=(1.0, -2.0, 0.5), seed=3)
    residual = noisy.y.double() - (
        1 - 2 * noisy.X[:, 0].double() + 0.5 * noisy.X[:, 0].double() ** 2
    )
    assert abs(float(residual.std()) - 0.3) < 0.02


def test_unknown_names_list_the_bundled_sets():
    with pytest.raises(DataError, match="bundled: digits") as info:
        load_bundled("digts")
    assert "Did you mean 'digits'" in str(info.value)
    with pytest.raises(DataError, match="no such file"):
        load_data("nope/missing.csv")
    assert set(BUNDLED) >= {"digits", "breast_cancer", "wine", "diabetes", "mnist1d", "polynomial"}
