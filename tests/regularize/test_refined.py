"""The pieces behind a fast dense lasso / elastic net and ridge (regularize/_l1.py, _passes.py,
linear.py; issue 19): a float32 Gram matrix refined to the float64 answer, polish's Cholesky
solve, FISTA with backtracking and the blocked passes over X — each against float64 NumPy,
closed forms, or the float64 path."""

import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from dlopt.regularize import _l1, _passes, elastic_net, lasso, linear, ridge


def _problem(seed, n, d, mean_scale=1.0, collinear=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d) + mean_scale * rng.normal(size=d)
    if collinear:  # column 1 a tiny perturbation of column 0: cond(G) ~ 10¹⁴
        X[:, 1] = X[:, 0] + 1e-7 * rng.normal(size=n)
    w = rng.normal(scale=2.0, size=d) * (rng.uniform(size=d) < 0.7)
    return torch.tensor(X), torch.tensor(X @ w + rng.normal(size=n) + 1.0)


def _fit(X, y, lam, beta, *, float64_gram=False):
    """lasso / elastic net on the default (working-set) path; with float64_gram=True
    l1_refined declines, as when float32 is too coarse, and the float64 Gram decides."""
    fit = lasso if beta == 0 else elastic_net
    args = (X, y, lam) if beta == 0 else (X, y, lam, beta)
    if float64_gram:
        with mock.patch("dlopt.regularize._l1.l1_refined", return_value=None):
            return fit(*args, fit_intercept=True)
    return fit(*args, fit_intercept=True)


def _spy_refined():
    """A spy on l1_refined: its results in `.results`."""
    real, results = _l1.l1_refined, []

    def spy(*args, **kwargs):
        results.append(real(*args, **kwargs))
        return results[-1]

    return mock.patch("dlopt.regularize._l1.l1_refined", side_effect=spy), results


@pytest.mark.parametrize("beta", [0.0, 0.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_dense_solution_is_refined_from_float32_to_the_float64_answer(seed, beta):
    X, y = _problem(seed, 4000, 150)
    patch, results = _spy_refined()
    with patch:
        refined = _fit(X, y, 5.0, beta)
    assert len(results) == 1 and results[0] is not None and results[0][2]  # certified
    exact = _fit(X, y, 5.0, beta, float64_gram=True)
    assert refined.converged and exact.converged
    assert 0 < int((refined.coef == 0).sum()) < 150  # dense, with exact zeros
    assert torch.equal(refined.coef == 0, exact.coef == 0)
    np.testing.assert_allclose(refined.coef.numpy(), exact.coef.numpy(), rtol=0, atol=1e-10)
    assert refined.intercept == pytest.approx(exact.intercept, abs=1e-10)


@pytest.mark.parametrize("kind", ["float32 overflows", "float32 underflows", "nearly collinear"])
def test_where_float32_is_too_coarse_the_float64_gram_decides(kind):
    """Entries of 10²⁰ overflow float32's squares and of 10⁻²⁵ underflow them (the diagonal
    check); two columns 10⁻⁷ apart are one column in float32 (the support's conditioning).
    Either way the answer is the float64 path's."""
    X, y = _problem(3, 3000, 120, collinear=kind == "nearly collinear")
    scale = {"float32 overflows": 1e20, "float32 underflows": 1e-25}.get(kind, 1.0)
    patch, results = _spy_refined()
    with patch:
        fit = _fit(X * scale, y, 5.0 * scale, 0.0)
    assert results == [None]
    exact = _fit(X * scale, y, 5.0 * scale, 0.0, float64_gram=True)
    assert fit.converged
    np.testing.assert_array_equal(fit.coef.numpy(), exact.coef.numpy())


def test_near_duplicate_columns_leave_float32_at_the_first_polish():
    """Ten pairs of columns 10⁻⁹ apart: float32 cannot tell them apart, and the refinement
    stops at the first solve on such a support (it spent 5000 FISTA iterations and 500
    eigendecompositions, 3.4 s, before REFINE_MIN_RCOND)."""
    X, y = _problem(17, 3000, 120)
    rng = np.random.default_rng(1)
    for j in range(0, 20, 2):
        X[:, j + 1] = X[:, j] + torch.tensor(1e-9 * rng.normal(size=len(X)))
    real_l1_solve, iterations = _l1.l1_solve, []

    def counted(*args, **kwargs):
        try:
            result = real_l1_solve(*args, **kwargs)
        except _l1.CoarseGram:
            iterations.append("coarse")
            raise
        iterations.append(result[1])
        return result

    patch, results = _spy_refined()
    with patch, mock.patch.object(_l1, "l1_solve", side_effect=counted):
        fit = _fit(X, y, 5.0, 0.0)
    assert results == [None] and iterations[0] == "coarse"
    assert fit.converged and iterations[1:] == [iterations[-1]]  # then one float64 solve
    exact = _fit(X, y, 5.0, 0.0, float64_gram=True)
    np.testing.assert_array_equal(fit.coef.numpy(), exact.coef.numpy())


@pytest.mark.parametrize("scale", [1e-12, 1e12])
@pytest.mark.parametrize("n, d", [(3000, 120), (200, 30)], ids=["working set", "gram"])
def test_the_fit_is_scale_free(scale, n, d):
    """lasso(s·X, y, s·λ) = lasso(X, y, λ)/s: the KKT certificate is relative, so X·10⁻¹²
    is solved as exactly as X (an absolute 10⁻⁹ slack certified float32-accurate answers)."""
    X, y = _problem(13, n, d)
    base = lasso(X, y, 5.0, fit_intercept=True)
    scaled = lasso(X * scale, y, 5.0 * scale, fit_intercept=True)
    assert base.converged and scaled.converged
    assert torch.equal(base.coef == 0, scaled.coef == 0)
    np.testing.assert_allclose(
        scaled.coef.numpy() * scale, base.coef.numpy(), rtol=0, atol=1e-10 * base.coef.abs().max()
    )


@pytest.mark.parametrize("offset", [1e5, 1e8])
@pytest.mark.parametrize("n, d", [(3000, 120), (200, 30)], ids=["working set", "gram"])
@pytest.mark.parametrize("kind", ["lasso", "elastic_net", "ridge"])
def test_column_means_far_above_the_spread_are_centred_away(kind, n, d, offset):
    """X + 10⁸: the same coefficients and predictions as X itself (the algebraic centring
    XᵀX − n·x̄x̄ᵀ gave 10⁻⁵ errors at 10⁵ and 10³⁰⁴ at 10⁸). The intercept, ȳ − x̄ᵀŵ, carries
    10⁸ × the coefficients' rounding, so the predictions are what compare."""
    X, y = _problem(14, n, d)
    fit = {"lasso": lasso, "ridge": ridge, "elastic_net": lambda *a, **k: elastic_net(*a, 0.5, **k)}
    base = fit[kind](X, y, 5.0, fit_intercept=True)
    moved = fit[kind](X + offset, y, 5.0, fit_intercept=True)
    np.testing.assert_allclose(moved.coef.numpy(), base.coef.numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(moved.predict(X + offset), base.predict(X), rtol=0, atol=1e-5)


def test_a_tensor_that_requires_grad_and_a_column_major_one_are_fitted_as_they_are():
    X, y = _problem(15, 3000, 120)
    base = lasso(X, y, 5.0, fit_intercept=True)
    leaf = X.clone().requires_grad_(True)
    np.testing.assert_array_equal(lasso(leaf, y, 5.0, fit_intercept=True).coef, base.coef)
    column_major = X.T.contiguous().T
    assert not column_major.is_contiguous()
    np.testing.assert_allclose(
        lasso(column_major, y, 5.0, fit_intercept=True).coef, base.coef, rtol=0, atol=1e-12
    )


def test_float32_overflow_is_not_reported_by_numpy():
    X, y = _problem(16, 3000, 120)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lasso(X * 1e20, y, 5.0e20, fit_intercept=True)


def test_the_float32_gram_and_its_check_against_float64():
    X, _ = _problem(4, 5000, 40, mean_scale=100.0)
    x_mean = X.mean(0)
    Xc = (X - x_mean).numpy()
    exact = Xc.T @ Xc
    with mock.patch.object(_passes, "GRAM_ROWS", 777):  # blocks that do not divide n
        G, diagonal = _passes.centred_gram_float32(X, x_mean)
    assert G.dtype == torch.float64
    # float32 accuracy, relative to the centred entries (not to the 10⁴ × larger raw ones)
    assert np.abs(G.numpy() - exact).max() <= 1e-5 * np.abs(exact).max()
    np.testing.assert_allclose(diagonal.numpy(), np.diag(exact), rtol=1e-9)
    # the device path (whole-matrix torch) gives the same numbers to float32 rounding
    G_whole, squares = _passes._gram_float32_whole(X, x_mean)
    assert np.abs(G_whole.numpy() - exact).max() <= 1e-5 * np.abs(exact).max()
    np.testing.assert_allclose((squares - len(X) * x_mean**2).numpy(), np.diag(exact), rtol=1e-9)


@pytest.mark.parametrize("columns", ["all", "some"])
def test_the_blocked_correlation_equals_two_float64_products(columns):
    X, y = _problem(5, 1000, 30)
    x_mean = X.mean(0)
    y_c = y - y.mean()
    rng = np.random.default_rng(0)
    cols = None if columns == "all" else torch.tensor([3, 7, 8, 20])
    w = torch.tensor(rng.normal(size=30 if cols is None else 4))
    X_w = None if cols is None else X[:, cols].contiguous()
    Xc = (X - x_mean).numpy()
    Xc_w = Xc if cols is None else Xc[:, cols.numpy()]
    expected = Xc.T @ (y_c.numpy() - Xc_w @ w.numpy())
    with mock.patch.object(_passes, "CORRELATION_ROWS", 37):
        got = _passes.correlation(X, y_c, x_mean, w, X_w, cols)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-9)


def test_the_support_solve_is_cholesky_when_well_conditioned_and_minimum_norm_when_singular():
    rng = np.random.default_rng(6)
    B = rng.normal(size=(50, 20))
    A, b = B.T @ B, rng.normal(size=20)
    with mock.patch("torch.linalg.eigh", side_effect=AssertionError("not Cholesky")):
        x = _l1._support_solve(torch.tensor(A), torch.tensor(b))
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(A, b), rtol=1e-12)
    assert np.linalg.cond(A) > 2  # so 1/cond < 0.5: refused under the refinement's bound
    with pytest.raises(_l1.CoarseGram):
        _l1._support_solve(torch.tensor(A), torch.tensor(b), min_rcond=0.5)
    C = rng.normal(size=(50, 5))
    S = np.hstack([C, C[:, :2]])  # rank 5 of 7: singular
    A, b = S.T @ S, S.T @ rng.normal(size=50)  # b in the range: consistent
    x = _l1._support_solve(torch.tensor(A), torch.tensor(b))
    np.testing.assert_allclose(x.numpy(), np.linalg.pinv(A) @ b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("guess", [1e-6, 1e4], ids=["far too small", "far too large"])
def test_fista_backtracks_from_any_lipschitz_guess_to_the_same_answer(guess):
    X, y = _problem(7, 400, 25)
    Xc, yc = X - X.mean(0), y - y.mean()
    G, c = Xc.T @ Xc, Xc.T @ yc
    reference, _, certified = _l1.l1_solve(G, c, 30.0, 0.2, 100_000)
    assert certified
    true = float(torch.linalg.eigvalsh(G)[-1])
    with mock.patch.object(_l1, "_lipschitz_guess", return_value=guess * true):
        w, iterations, certified = _l1.l1_solve(G, c, 30.0, 0.2, 100_000)
    assert certified and iterations > 0
    np.testing.assert_allclose(w.numpy(), reference.numpy(), rtol=0, atol=1e-10)


def test_the_lipschitz_guess_is_the_largest_eigenvalue_from_below():
    X, _ = _problem(8, 300, 40)
    G = (X - X.mean(0)).T @ (X - X.mean(0))
    top = float(torch.linalg.eigvalsh(G)[-1])
    assert 0.5 * top <= _l1._lipschitz_guess(G) <= top * (1 + 1e-12)


def test_kkt_violation_is_the_worst_miss_of_the_optimality_conditions():
    w = torch.tensor([1.5, 0.0, -2.0, 0.0], dtype=torch.float64)
    lam, l2 = 1.0, 0.25
    # on the support the condition is ρ_j − 2·l2·w_j = λ·sign(w_j): ρ = (1.75, ·, −2.0, ·)
    rho = torch.tensor([1.75, 0.4, -2.0 + 0.01, -1.3], dtype=torch.float64)
    # misses: |1.75 − 0.75 − 1| = 0, |−1.99 + 1 + 1| = 0.01 on; |0.4| − 1 < 0, 1.3 − 1 = 0.3 off
    assert _l1.kkt_violation(rho, w, lam, l2) == pytest.approx(0.3)
    rho[3] = 0.9
    assert _l1.kkt_violation(rho, w, lam, l2) == pytest.approx(0.01)


def _ridge_float64(X, y, lam, fit_intercept=True):
    with mock.patch("dlopt.regularize.linear._ridge_refined", return_value=None):
        return ridge(X, y, lam, fit_intercept=fit_intercept)


def _centred_ridge(X, y, lam, fit_intercept):
    """The reference: the normal equations of explicitly centred data, in float64 NumPy."""
    X, y = X.numpy(), y.numpy()
    if fit_intercept:
        X, y = X - X.mean(0), y - y.mean()
    return np.linalg.solve(X.T @ X + 2 * lam * np.eye(X.shape[1]), X.T @ y)


def _spy(name):
    """A spy on linear.<name>: its results in `.results`."""
    real, results = getattr(linear, name), []

    def spy(*args):
        results.append(real(*args))
        return results[-1]

    return mock.patch(f"dlopt.regularize.linear.{name}", side_effect=spy), results


@pytest.mark.parametrize("fit_intercept, mean_scale", [(True, 1.0), (False, 1.0), (True, 10.0)])
def test_ridge_refined_from_float32_is_the_float64_answer(fit_intercept, mean_scale):
    """As accurate as float64 normal equations of centred data (more than XᵀX − n·x̄x̄ᵀ in
    float64, whose cancellation costs 2e-11 here at column means 10 × the spread)."""
    X, y = _problem(9, 4000, 150, mean_scale=mean_scale)
    patch, results = _spy("_ridge_refined")
    with patch:
        fit = ridge(X, y, 20.0, fit_intercept=fit_intercept)
    assert results[0] is not None
    reference = _centred_ridge(X, y, 20.0, fit_intercept)
    scale = np.abs(reference).max()
    np.testing.assert_allclose(fit.coef.numpy(), reference, rtol=0, atol=1e-12 * scale)
    exact = _ridge_float64(X, y, 20.0, fit_intercept)
    np.testing.assert_allclose(fit.coef.numpy(), exact.coef.numpy(), rtol=0, atol=1e-10 * scale)
    assert fit.intercept == pytest.approx(exact.intercept, abs=1e-9)
    theirs = Ridge(alpha=40.0, fit_intercept=fit_intercept).fit(X.numpy(), y.numpy())
    np.testing.assert_allclose(fit.coef.numpy(), theirs.coef_, rtol=0, atol=1e-9)


@pytest.mark.parametrize("case", ["lambda below the Cholesky shift", "float32 overflows"])
def test_ridge_leaves_what_float32_cannot_do_to_the_float64_path(case):
    X, y = _problem(10, 3000, 120)
    lam = 1e-9 if case == "lambda below the Cholesky shift" else 20.0
    if case == "float32 overflows":
        X, lam = X * 1e20, lam * 1e40
    patch, results = _spy("_ridge_refined")
    with patch:
        fit = ridge(X, y, lam, fit_intercept=True)
    assert results == [None]
    exact = _ridge_float64(X, y, lam)
    np.testing.assert_array_equal(fit.coef.numpy(), exact.coef.numpy())
    assert fit.intercept == exact.intercept


def test_ridge_at_the_cholesky_shift_with_nearly_collinear_columns_is_still_accurate():
    """cond ≈ 10⁶, the most the shift allows: the rounds contract by ~ε₃₂·cond ≈ 0.06."""
    X, y = _problem(12, 3000, 120)
    X[:, 1] = X[:, 0] + torch.tensor(1e-5 * np.random.default_rng(0).normal(size=len(X)))
    lam = float((X - X.mean(0)).square().sum()) * 0.5e-6
    fit = ridge(X, y, lam, fit_intercept=True)
    reference = _centred_ridge(X, y, lam, True)
    np.testing.assert_allclose(fit.coef.numpy(), reference, rtol=0, atol=1e-8)


def test_ridge_on_the_refined_path_refuses_non_finite_x():
    X, y = _problem(11, 3000, 120)
    X[5, 7] = np.inf
    with pytest.raises(ValueError, match="finite"):
        ridge(X, y, 20.0)


def test_a_small_ridge_with_huge_means_in_x_and_y_is_exact():
    """Column means 10⁸ and ȳ ≈ 10⁹ at 200 × 40 (the Gram path): c is formed from the centred
    y — Xᵀy − n·x̄ȳ cancelled ȳ away (3e-9 relative error; now at rounding)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 40)) + 1e8 * (1 + rng.random(40))
    y = X @ rng.standard_normal(40) + rng.standard_normal(200)
    lam = float(((X - X.mean(0)) ** 2).sum()) / 40
    reference = _centred_ridge(torch.tensor(X), torch.tensor(y), lam, True)
    for target in (y, y - y.mean()):
        fit = ridge(torch.tensor(X), torch.tensor(target), lam, fit_intercept=True)
        np.testing.assert_allclose(fit.coef.numpy(), reference, rtol=0, atol=1e-13)


@pytest.mark.parametrize("kind", ["ridge", "lasso", "elastic_net"])
@pytest.mark.parametrize("n, d", [(3000, 120), (200, 40)], ids=["large", "small"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_entries_whose_squares_overflow_are_refused_by_name_without_numpy_warnings(
    kind, n, d, fit_intercept
):
    X, y = _problem(18, n, d)
    X[0, 0] = 1e200
    fit = {"lasso": lasso, "ridge": ridge, "elastic_net": lambda *a, **k: elastic_net(*a, 0.5, **k)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="too large: their squares overflow float64"):
            fit[kind](X, y, 1.0, fit_intercept=fit_intercept)
        X[0, 0] = np.nan
        with pytest.raises(ValueError, match="X must be finite; found NaN or inf"):
            fit[kind](X, y, 1.0, fit_intercept=fit_intercept)
