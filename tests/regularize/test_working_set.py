"""The working-set path of lasso / elastic net (regularize/_l1.py) against scikit-learn and
against the full-Gram path: same coefficients, certified by the same KKT test (issue 19)."""

import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import ElasticNet, Lasso

from dlopt.regularize import ConvergenceWarning, elastic_net, lasso, sklearn_alpha


def _problem(seed: int, n: int, d: int, active: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d) + rng.normal(size=d)
    w = np.zeros(d)
    w[:active] = rng.normal(scale=2.0, size=active)
    return X, X @ w + 0.3 * rng.normal(size=n) + rng.normal()


def _fit(X, y, lam, beta, fit_intercept, *, working_set: bool, growth: int = 32):
    threshold = 0 if working_set else 10**30
    with (
        mock.patch("dlopt.regularize.linear.WORKING_SET_MIN_WORK", threshold),
        mock.patch("dlopt.regularize._l1.WORKING_SET_GROWTH", growth),
    ):
        if beta == 0:
            return lasso(torch.tensor(X), torch.tensor(y), lam, fit_intercept=fit_intercept)
        return elastic_net(torch.tensor(X), torch.tensor(y), lam, beta, fit_intercept=fit_intercept)


def _sklearn(X, y, lam, beta, fit_intercept):
    kind = "elastic_net" if beta else "lasso"
    model = ElasticNet if beta else Lasso
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model(**sklearn_alpha(kind, lam, len(X), beta), fit_intercept=fit_intercept)
        return fit.set_params(tol=1e-14, max_iter=200_000).fit(X, y)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(5, 80),
    d=st.integers(1, 60),
    active=st.integers(1, 20),
    lam=st.floats(0.05, 50.0),
    beta=st.sampled_from([0.0, 0.5]),
    fit_intercept=st.booleans(),
    growth=st.sampled_from([1, 3, 32]),
)
def test_working_set_equals_scikit_learn(seed, n, d, active, lam, beta, fit_intercept, growth):
    """Forced on small problems (threshold 0), growing by 1, 3 or 32 columns a round."""
    X, y = _problem(seed, n, d, min(active, d))
    ours = _fit(X, y, lam, beta, fit_intercept, working_set=True, growth=growth)
    theirs = _sklearn(X, y, lam, beta, fit_intercept)
    assert ours.converged
    np.testing.assert_allclose(ours.coef.numpy(), theirs.coef_, atol=1e-6, rtol=0)
    assert ours.intercept == pytest.approx(float(theirs.intercept_), abs=1e-6)


@pytest.mark.parametrize("lam", [3000.0, 30.0], ids=["sparse", "dense"])
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_large_problem_takes_the_working_set_and_matches_the_gram_path(lam, beta):
    """3000 × 120 (n·d² above the threshold): the default path equals the full-Gram one."""
    X, y = _problem(0, 3000, 120, 10)
    gram_path = _fit(X, y, lam, beta, True, working_set=False)
    with mock.patch("dlopt.regularize.linear.l1_solve", side_effect=AssertionError):
        default = (lasso if beta == 0 else elastic_net)(
            *(torch.tensor(X), torch.tensor(y), lam, *([beta] if beta else [])),
            fit_intercept=True,
        )
    assert default.converged and gram_path.converged
    np.testing.assert_allclose(default.coef.numpy(), gram_path.coef.numpy(), atol=1e-9, rtol=0)
    assert torch.equal(default.coef == 0, gram_path.coef == 0)  # the same exact zeros
    theirs = _sklearn(X, y, lam, beta, True)
    np.testing.assert_allclose(default.coef.numpy(), theirs.coef_, atol=1e-6, rtol=0)


def test_working_set_refuses_non_finite_x_and_reports_the_cap():
    X, y = _problem(1, 3000, 120, 10)
    X[7, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        lasso(torch.tensor(X), torch.tensor(y), 30.0)
    X[7, 3] = 0.0
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        fit = lasso(torch.tensor(X), torch.tensor(y), 30.0, max_iter=3)
    assert not fit.converged
