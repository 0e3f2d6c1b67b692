"""Ridge, lasso and elastic net where the data are rank-deficient: collinear columns, n < d,
n ≤ 2, constant y — against scikit-learn and closed forms (issue 16)."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import ElasticNet, Lasso, Ridge

from dlopt.regularize import ConvergenceWarning, elastic_net, lasso, ridge, sklearn_alpha


def _collinear():
    """The issue's repro: column 3 repeats column 0."""
    torch.manual_seed(0)
    X = torch.randn(20, 3, dtype=torch.float64)
    X = torch.cat([X, X[:, :1]], 1)
    return X, 2 * X[:, 0] + X[:, 1]


def _l1_objective(X, y, lam, beta=0.0):
    X, y = np.asarray(X), np.asarray(y)
    return lambda w: 0.5 * np.sum((X @ w - y) ** 2) + lam * (beta * w @ w + np.abs(w).sum())


def _sklearn_l1(X, y, lam, beta=0.0, fit_intercept=False):
    X, y = np.asarray(X), np.asarray(y)
    params = sklearn_alpha("elastic_net" if beta else "lasso", lam, len(X), beta)
    model = ElasticNet if beta else Lasso
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model(**params, fit_intercept=fit_intercept, tol=1e-14, max_iter=1_000_000)
        return fit.fit(X, y)


def _kkt(X, y, coef, lam, beta=0.0):
    """max violation of the optimality conditions of ½‖Xw − y‖² + λ(β‖w‖² + ‖w‖₁)."""
    X, y, w = np.asarray(X), np.asarray(y), np.asarray(coef, dtype=np.float64)
    corr = X.T @ (y - X @ w) - 2 * lam * beta * w
    on = w != 0
    return max(
        np.abs(corr[on] - lam * np.sign(w[on])).max(initial=0.0),
        (np.abs(corr[~on]) - lam).max(initial=0.0),
    )


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_collinear_columns_on_the_support_are_solved_exactly(beta):
    """The issue's repro raised LinAlgError (singular X_SᵀX_S); now the fit is certified by
    KKT and its objective equals scikit-learn's (the minimizer is not unique, the fit is)."""
    X, y = _collinear()
    fit = lasso(X, y, 0.5) if beta == 0 else elastic_net(X, y, 0.5, beta)
    assert fit.converged and _kkt(X, y, fit.coef, 0.5, beta) < 1e-10
    theirs = _sklearn_l1(X, y, 0.5, beta)
    f = _l1_objective(X, y, 0.5, beta)
    assert f(fit.coef.numpy()) == pytest.approx(f(theirs.coef_), rel=1e-12)
    np.testing.assert_allclose(fit.predict(X).numpy(), theirs.predict(X.numpy()), atol=1e-6)
    assert float(fit.coef[0]) == pytest.approx(float(fit.coef[3]), abs=1e-12)  # split evenly
    if beta > 0:  # strictly convex: unique, equal to scikit-learn's
        np.testing.assert_allclose(fit.coef.numpy(), theirs.coef_, atol=1e-6)


@pytest.mark.parametrize("lam", [0.01, 0.1, 1.0])
def test_lasso_with_more_features_than_samples(lam):
    """n = 40 < d = 120: at λ = 0.01 the iterates' support outgrows the rank (LinAlgError
    before); the objective equals scikit-learn's and KKT holds."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 120))
    w = np.zeros(120)
    w[:10] = rng.normal(size=10)
    y = X @ w + 0.1 * rng.normal(size=40)
    fit = lasso(torch.tensor(X), torch.tensor(y), lam)
    assert fit.converged and _kkt(X, y, fit.coef, lam) < 1e-9
    f = _l1_objective(X, y, lam)
    assert f(fit.coef.numpy()) == pytest.approx(f(_sklearn_l1(X, y, lam).coef_), rel=1e-10)


def _rank_deficient(n=30):
    torch.manual_seed(1)
    X = torch.randn(n, 5, dtype=torch.float64)
    return torch.cat([X, X[:, :2] + X[:, 2:3]], 1), torch.randn(n, dtype=torch.float64)


def test_ridge_at_lambda_zero_is_minimum_norm_least_squares_at_every_alignment():
    """The Cholesky-failure fallback gave non-least-squares answers at some memory offsets;
    the SVD path gives the minimum-norm least-squares solution (numpy's pinv), bit for bit
    the same at every offset."""
    X, y = _rank_deficient()
    expected = np.linalg.pinv(X.numpy()) @ y.numpy()
    fits = []
    for offset in range(4):
        buffer = torch.empty(X.numel() + offset, dtype=torch.float64)
        shifted = buffer[offset:].view(X.shape)
        shifted.copy_(X)
        fits.append(ridge(shifted, y, 0.0).coef)
        np.testing.assert_allclose(fits[-1].numpy(), expected, atol=1e-12)
    assert all(torch.equal(fits[0], other) for other in fits[1:])


def test_ridge_at_tiny_lambda_with_collinear_columns_is_as_accurate_as_sklearn_svd():
    """λ = 1e-8: the reference solves the augmented least-squares problem [X; √(2λ)I]w ≈ [y; 0]
    by QR (cond ≈ σ₁/√(2λ), so accurate to ~1e-11); ours is no further from it than
    scikit-learn's SVD solver (7.3e-7 before; the README promises 1e-12-level agreement)."""
    X, y = _rank_deficient()
    lam = 1e-8
    augmented = np.vstack([X.numpy(), np.sqrt(2 * lam) * np.eye(7)])
    reference = np.linalg.lstsq(augmented, np.concatenate([y.numpy(), np.zeros(7)]))[0]
    ours = np.abs(ridge(X, y, lam).coef.numpy() - reference).max()
    theirs = Ridge(alpha=2 * lam, fit_intercept=False, solver="svd").fit(X.numpy(), y.numpy())
    assert ours <= max(np.abs(theirs.coef_ - reference).max(), 1e-9)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("kind", ["ridge", "lasso", "elastic_net"])
def test_one_or_two_samples(kind, n, fit_intercept):
    rng = np.random.default_rng(n)
    X, y = rng.normal(size=(n, 4)), rng.normal(size=n)
    lam = 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "ridge":
            theirs = Ridge(alpha=2 * lam, fit_intercept=fit_intercept).fit(X, y)
        else:
            theirs = _sklearn_l1(X, y, lam, 0.5 if kind == "elastic_net" else 0.0, fit_intercept)
    ours = {
        "ridge": lambda: ridge(torch.tensor(X), torch.tensor(y), lam, fit_intercept=fit_intercept),
        "lasso": lambda: lasso(torch.tensor(X), torch.tensor(y), lam, fit_intercept=fit_intercept),
        "elastic_net": lambda: elastic_net(
            torch.tensor(X), torch.tensor(y), lam, 0.5, fit_intercept=fit_intercept
        ),
    }[kind]()
    np.testing.assert_allclose(ours.predict(torch.tensor(X)).numpy(), theirs.predict(X), atol=1e-6)
    if kind != "lasso":  # strictly convex: the coefficients are unique
        np.testing.assert_allclose(ours.coef.numpy(), theirs.coef_, atol=1e-6)


@pytest.mark.parametrize("kind", ["ridge", "lasso", "elastic_net"])
def test_constant_y_gives_zero_coefficients_and_the_constant_as_intercept(kind):
    X = torch.randn(15, 6, dtype=torch.float64)
    y = torch.full((15,), 2.5, dtype=torch.float64)
    fit = {"ridge": ridge, "lasso": lasso}.get(
        kind, lambda X, y, lam, **kw: elastic_net(X, y, lam, 0.5, **kw)
    )(X, y, 1.0, fit_intercept=True)
    zeros = torch.zeros(6, dtype=torch.float64)
    if kind == "ridge":  # Xᵀy − n·x̄ȳ rounds to ~1e-16, not 0
        torch.testing.assert_close(fit.coef, zeros, atol=1e-12, rtol=0)
    else:  # λ ≥ ‖X_cᵀy_c‖∞ = 0: certified zeros
        assert torch.equal(fit.coef, zeros)
    assert fit.intercept == pytest.approx(2.5, abs=1e-14)


def test_the_iteration_cap_is_reported():
    """lasso(max_iter=5) returned coefficients 1.6 from the answer silently."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 120))
    y = X[:, :10] @ rng.normal(size=10)
    with pytest.warns(ConvergenceWarning, match="max_iter=5"):
        fit = lasso(torch.tensor(X), torch.tensor(y), 0.01, max_iter=5)
    assert not fit.converged and fit.n_iter == 5
    assert lasso(torch.tensor(X), torch.tensor(y), 1.0).converged
    with pytest.raises(ValueError, match="max_iter"):
        lasso(torch.tensor(X), torch.tensor(y), 1.0, max_iter=0)


@pytest.mark.parametrize("d", [8, 60])
def test_lambda_zero_is_least_squares_without_iterating(d):
    """lasso(lam=0) ran all 100 000 iterations (≈ 8 s) on noise-free data."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, d))
    y = X @ rng.normal(size=d)
    for fit in (
        lasso(torch.tensor(X), torch.tensor(y), 0.0),
        elastic_net(torch.tensor(X), torch.tensor(y), 0.0, 1.0),
    ):
        assert fit.n_iter == 0 and fit.converged
        np.testing.assert_allclose(fit.coef.numpy(), np.linalg.pinv(X) @ y, atol=1e-10)


@pytest.mark.parametrize("kind", ["ridge", "lasso", "elastic_net"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_input_dtype_is_kept(kind, dtype):
    X, y = _collinear()
    fit = {"ridge": ridge, "lasso": lasso}.get(kind, lambda X, y, lam: elastic_net(X, y, lam, 0.5))(
        X.to(dtype), y.to(dtype), 0.5
    )
    assert fit.coef.dtype == dtype
    assert fit.predict(X.to(dtype)).dtype == dtype
