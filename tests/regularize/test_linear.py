"""Ridge, lasso and elastic net against scikit-learn (C4), with λ converted as documented."""

import warnings

import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import ElasticNet, Lasso, Ridge

from dlopt.regularize import elastic_net, lasso, ridge, sklearn_alpha, soft_threshold


def _problem(seed: int, n: int, d: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d) + rng.normal(size=d)
    w = np.zeros(d)
    w[: max(1, d // 4)] = rng.normal(scale=2.0, size=max(1, d // 4))
    return X, X @ w + 0.3 * rng.normal(size=n) + rng.normal()


def _sklearn(kind, X, y, lam, beta, fit_intercept):
    params = sklearn_alpha(kind, lam, len(X), beta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "ridge":
            return Ridge(**params, fit_intercept=fit_intercept).fit(X, y)
        model = Lasso if kind == "lasso" else ElasticNet
        return model(**params, fit_intercept=fit_intercept, tol=1e-14, max_iter=200_000).fit(X, y)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(5, 60),
    d=st.integers(1, 40),
    lam=st.floats(0.05, 20.0),
    beta=st.floats(0.0, 2.0),
    fit_intercept=st.booleans(),
    kind=st.sampled_from(["ridge", "lasso", "elastic_net"]),
)
def test_coefficients_equal_scikit_learn(seed, n, d, lam, beta, fit_intercept, kind):
    """Includes n < d. Tolerance 1e-6 on coefficients and intercept."""
    X, y = _problem(seed, n, d)
    ours = {
        "ridge": lambda: ridge(torch.tensor(X), torch.tensor(y), lam, fit_intercept=fit_intercept),
        "lasso": lambda: lasso(torch.tensor(X), torch.tensor(y), lam, fit_intercept=fit_intercept),
        "elastic_net": lambda: elastic_net(
            torch.tensor(X), torch.tensor(y), lam, beta, fit_intercept=fit_intercept
        ),
    }[kind]()
    theirs = _sklearn(kind, X, y, lam, beta, fit_intercept)
    np.testing.assert_allclose(ours.coef.numpy(), theirs.coef_, atol=1e-6, rtol=0)
    assert ours.intercept == pytest.approx(float(theirs.intercept_), abs=1e-6)
    np.testing.assert_allclose(ours.predict(torch.tensor(X)).numpy(), theirs.predict(X), atol=1e-5)


def _objective(kind, X, y, lam, beta):
    def f(w):
        r = X @ w - y
        value = 0.5 * r @ r
        if kind == "ridge":
            return value + lam * w @ w
        return value + lam * (beta * w @ w + np.abs(w).sum())

    return f


@pytest.mark.parametrize("kind", ["ridge", "lasso", "elastic_net"])
def test_solutions_minimize_the_stated_objective(kind):
    """Closed-form ridge equals gradient-based minimization of ½‖Xw−y‖² + λ‖w‖²; the L1 fits
    beat every nearby point of their objective."""
    X, y = _problem(3, 40, 8)
    lam, beta = 3.0, 0.5
    f = _objective(kind, X, y, lam, beta if kind == "elastic_net" else 0.0)
    fit = {"ridge": ridge, "lasso": lasso}.get(kind)
    coef = (
        fit(torch.tensor(X), torch.tensor(y), lam)
        if fit
        else elastic_net(torch.tensor(X), torch.tensor(y), lam, beta)
    ).coef.numpy()
    if kind == "ridge":
        from dlopt.optim import minimize

        Xt, yt = torch.tensor(X), torch.tensor(y)
        descent = minimize(
            lambda w: 0.5 * ((Xt @ w - yt) ** 2).sum() + lam * (w**2).sum(),
            torch.zeros(8, dtype=torch.float64),
            method="gd",
            tol=1e-6,
            max_iter=100_000,
        )
        assert descent.success  # plain gradient descent on the same objective
        # ‖∇‖ ≤ 1e-6 with Hessian ⪰ 2λI = 6I bounds the error by 1e-6/6
        np.testing.assert_allclose(coef, descent.x.numpy(), atol=2e-7)
        grad = lambda w: X.T @ (X @ w - y) + 2 * lam * w  # noqa: E731
        result = scipy.optimize.minimize(
            f, np.zeros(8), jac=grad, method="BFGS", options={"gtol": 1e-12}
        )
        np.testing.assert_allclose(coef, result.x, atol=1e-7)
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert f(coef) <= f(coef + 1e-4 * rng.normal(size=8)) + 1e-12


def test_lasso_gives_exact_zeros_and_l1_fits_match_at_beta_zero():
    X, y = _problem(5, 80, 30)
    fit = lasso(torch.tensor(X), torch.tensor(y), 40.0)
    assert int((fit.coef == 0).sum()) > 10
    torch.testing.assert_close(
        elastic_net(torch.tensor(X), torch.tensor(y), 40.0, 0.0).coef, fit.coef
    )
    assert torch.equal(
        lasso(torch.tensor(X), torch.tensor(y), 1e6).coef, torch.zeros(30, dtype=torch.float64)
    )


def test_soft_threshold_is_the_prox_of_the_l1_norm():
    z = torch.tensor([-3.0, -0.5, 0.0, 0.2, 2.0])
    assert soft_threshold(z, 1.0).tolist() == [-2.0, -0.0, 0.0, 0.0, 1.0]
    # prox property: argmin_u ½(u − z)² + t|u|, checked on a grid
    grid = torch.linspace(-4, 4, 80001, dtype=torch.float64)
    for value in z.tolist():
        best = grid[torch.argmin(0.5 * (grid - value) ** 2 + grid.abs())]
        got = float(soft_threshold(torch.tensor(value, dtype=torch.float64), 1.0))
        assert got == pytest.approx(float(best), abs=1e-4)


def test_bad_inputs_are_refused():
    X, y = torch.randn(5, 2), torch.randn(5)
    with pytest.raises(ValueError, match="lam"):
        ridge(X, y, -1.0)
    bad = X.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        lasso(bad, y, 1.0)
    with pytest.raises(ValueError, match="shape"):
        ridge(X, y[:3], 1.0)
