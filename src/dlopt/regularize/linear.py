"""Penalized linear least squares (SPEC C4): ridge, lasso and elastic net, with prediction y = xᵀŵ.

Objectives (n samples, X of shape (n, d)):

    ridge        ½‖Xw − y‖² + λ‖w‖²             ŵ = (XᵀX + 2λI)⁻¹Xᵀy   (the notes' formula)
    lasso        ½‖Xw − y‖² + λ‖w‖₁
    elastic net  ½‖Xw − y‖² + λ(β‖w‖² + ‖w‖₁)

scikit-learn scales the data term by 1/n, so the same solutions are
``Ridge(alpha=2λ)``, ``Lasso(alpha=λ/n)`` and ``ElasticNet(alpha=λ(1+2β)/n,
l1_ratio=1/(1+2β))``, all with ``fit_intercept`` as here. With ``fit_intercept=True`` X and y
are centred first and the unpenalized intercept is b = ȳ − x̄ᵀŵ.

Ridge is solved by Cholesky on XᵀX + 2λI (never an explicit inverse) when that matrix is well
conditioned, 2λ ≥ 10⁻⁶·tr(XᵀX); for λ = 0 and tiny λ, where rounding in XᵀX would swamp the
answer, by the SVD X = UΣVᵀ of the (centred) data, ŵ = V·diag(σ/(σ² + 2λ))·Uᵀy with σ below
max(n, d)·ε·σ₁ treated as zero (as LAPACK's gelsd and scikit-learn's ``solver="svd"``): at
λ = 0 this is the minimum-norm least-squares solution, deterministic whatever the rank.

Lasso and elastic net run FISTA on the Gram matrix until the active set settles, then *polish*
(for large n·d² on the Gram matrix of a working set of columns only: see
:mod:`dlopt.regularize._l1`):
on the support S with signs s the solution solves (X_SᵀX_S + 2λβI)w_S = X_Sᵀy − λs exactly. The
solve is by Cholesky where that matrix is well conditioned, else the minimum-norm one through
its eigendecomposition, so collinear columns on the support (a singular X_SᵀX_S, also when the
support outgrows the rank for n < d) are handled. The KKT conditions certify the result:
X_jᵀ(y − Xw) − 2λβw_j = λ·sign(w_j) on the support and |X_jᵀ(y − Xw)| ≤ λ off it, to 10⁻⁹ of
max(λ, ‖Xᵀy‖∞) — relative, so the fit is the same at any scale of X and y.
With collinear columns the lasso's minimizer is not unique: the fit (Xŵ) and objective are,
and the polished ŵ is the one FISTA's iterates approach from 0. λ = 0 is least squares and
returns ridge's λ = 0 answer at once. A run that hits `max_iter` before a certified answer
returns FISTA's last iterate with ``converged=False`` (and a :class:`ConvergenceWarning`).

Large problems (n·d² > 10⁷), where the Gram matrix costs most, form it in float32 — half the
time — and refine to the float64 answer with exact residuals X_cᵀ(y_c − X_c w), one blocked
pass over X each (ridge: :func:`_ridge_refined`; a dense lasso:
:func:`~dlopt.regularize._l1.l1_refined`); where float32 is too coarse for X (overflow,
underflow, a support too ill-conditioned for the rounds to contract) the float64 Gram decides.
With ``fit_intercept`` a column whose mean is far above its range is centred in X itself (a
copy), not through XᵀX − n·x̄x̄ᵀ, whose cancellation loses (|x̄|/σ)²·ε.

The answers are float64 on the inputs' device; ``coef`` comes back in X's dtype (float64 for
integer X).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from dlopt._validation import check_finite_number, check_positive_int
from dlopt.errors import InvalidParameterError
from dlopt.regularize._l1 import WORKING_SET_MIN_WORK, l1_solve, l1_working_set
from dlopt.regularize._l1 import soft_threshold as soft_threshold  # re-exported
from dlopt.regularize._passes import (
    centred_gram_float32,
    centred_problem,
    faithful,
    gram,
    refuse_non_finite,
)


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped at `max_iter` before its answer was certified."""


@dataclass(frozen=True)
class LinearFit:
    """Coefficients `coef` (d,), `intercept` (0.0 without one), the iterations used, and
    whether the answer is certified (``converged=False``: stopped at `max_iter`)."""

    coef: Tensor
    intercept: float
    n_iter: int = 0
    converged: bool = True

    def predict(self, X: Tensor) -> Tensor:
        """y = xᵀŵ + b for each row of X."""
        return X.to(self.coef.dtype) @ self.coef + self.intercept


def _check_xy(X: Tensor, y: Tensor, caller: str) -> tuple[Tensor, Tensor, torch.dtype]:
    """X and y in float64, and the dtype the coefficients come back in (X's, if floating)."""
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    if X.dim() != 2 or y.dim() != 1 or len(X) != len(y):
        raise InvalidParameterError(
            f"{caller}(X, y) needs X of shape (n, d) and y of shape (n,); got "
            f"{tuple(X.shape)} and {tuple(y.shape)}."
        )
    if len(X) == 0:
        raise InvalidParameterError(
            f"{caller}(X, y) needs at least one sample; got X of shape (0, d)."
        )
    dtype = X.dtype if torch.is_floating_point(X) else torch.float64
    # no gradient flows through the solvers; row-major for the blocked passes over X
    X = X.detach().to(torch.float64).contiguous()
    y = y.detach().to(device=X.device, dtype=torch.float64)
    if not bool(torch.isfinite(y).all()):
        raise InvalidParameterError(f"{caller}(X, y): y must be finite; found NaN or inf.")
    return X, y, dtype


OFFSET_RATIO = 100.0
"""fit_intercept centres X itself (a copy) when some column's mean exceeds this many times its
range (judged on ≤ 512 evenly spaced rows; the range of 512 normal draws is about 6σ, so
|x̄| > ~600σ): centring through XᵀX − n·x̄x̄ᵀ loses (|x̄|/σ)²·ε of every entry — 10⁻⁶ at 10⁵,
everything at 10⁸ — while data centred first lose nothing. Below the ratio the algebraic
centring costs under 10⁻¹⁰ and no copy."""


def _without_offsets(X: Tensor, fit_intercept: bool) -> tuple[Tensor, Tensor | None]:
    """(X − x̄, x̄) when X has a column mean far above its range (OFFSET_RATIO), else
    (X, None). A constant non-zero column counts (it has no range)."""
    if not fit_intercept or len(X) < 2:
        return X, None
    sample = X[:: max(1, len(X) // 512)]  # amax and amin: 0.1 ms here, torch's std 1.3
    spread = sample.amax(0) - sample.amin(0)
    if not bool((sample.mean(0).abs() > OFFSET_RATIO * spread).any()):
        return X, None
    offset = X.mean(0)
    return X - offset, offset


def _with_offsets(fit: LinearFit, offset: Tensor | None) -> LinearFit:
    """The fit on X − x̄ as a fit on X: the same coefficients, the intercept less x̄ᵀŵ."""
    if offset is None:
        return fit
    return replace(fit, intercept=fit.intercept - float(offset @ fit.coef.to(offset.dtype)))


def _normal_equations(
    X: Tensor, y: Tensor, fit_intercept: bool, caller: str
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(G, c, x̄, ȳ) with G = X_cᵀX_c and c = X_cᵀy_c for the centred data, without centring X.

    Uses X_cᵀX_c = XᵀX − n·x̄x̄ᵀ (no copy of X). A NaN or inf anywhere in X reaches G's
    diagonal (x² is inf or NaN), so checking G replaces a pass over X.
    """
    G = gram(X)
    refuse_non_finite(X, caller, G.diagonal())
    problem, y_mean = centred_problem(X, y, fit_intercept, caller)
    if fit_intercept:
        G = G - len(X) * torch.outer(problem.x_mean, problem.x_mean)
    return G, problem.c, problem.x_mean, y_mean


def _finish(
    w: Tensor,
    x_mean: Tensor,
    y_mean: Tensor,
    fit_intercept: bool,
    n_iter: int,
    dtype: torch.dtype,
    converged: bool = True,
) -> LinearFit:
    intercept = float(y_mean - x_mean @ w) if fit_intercept else 0.0
    return LinearFit(w.to(dtype), intercept, n_iter, converged)


CHOLESKY_MIN_SHIFT = 1e-6
"""Ridge uses Cholesky on XᵀX + 2λI when 2λ ≥ this·tr(XᵀX), i.e. cond ≤ d·10⁶ at worst: its
error, ε·cond, stays far below the 1e-6 the tests ask. Below it, the SVD of X (see the module
docstring)."""


def _svd_solve(X: Tensor, y: Tensor, lam: float) -> Tensor:
    """V·diag(σ/(σ² + 2λ))·Uᵀy, σ ≤ max(n, d)·ε·σ₁ dropped: minimum-norm at λ = 0."""
    U, sigma, Vh = torch.linalg.svd(X, full_matrices=False)
    if sigma.numel() == 0:
        return X.new_zeros(X.shape[1])
    cutoff = max(X.shape) * torch.finfo(X.dtype).eps * float(sigma[0])
    keep = sigma > cutoff
    factor = torch.where(keep, sigma / (sigma * sigma + 2 * lam), torch.zeros_like(sigma))
    return Vh.T @ (factor * (U.T @ y))


RIDGE_REFINE_MAX_ROUNDS = 8
"""Refinement rounds of _ridge_refined before it leaves the answer to the float64 Gram."""


def _ridge_refined(
    X: Tensor, y: Tensor, lam: float, fit_intercept: bool, caller: str
) -> tuple[Tensor, Tensor, Tensor] | None:
    """(ŵ, x̄, ȳ) by mixed-precision iterative refinement, or None where it does not pay.

    (G̃ + 2λI) = L̃L̃ᵀ by Cholesky with G̃ the float32 Gram matrix (half the float64 product's
    time, see :func:`~dlopt.regularize._l1.centred_gram_float32`); w₀ = (G̃ + 2λI)⁻¹c, then
    w ← w + (G̃ + 2λI)⁻¹(ρ − 2λw) with the exact residual ρ = X_cᵀ(y_c − X_c w) of the
    float64 problem (one blocked pass over X), until the correction is at float64 rounding
    (or the next one, predicted from the contraction so far, would be: usually two rounds).
    Each round shrinks the error by about ‖(G̃ + 2λI)⁻¹(G̃ − G)‖ ≈ ε₃₂·cond; the answer is
    the float64 Cholesky one to cond·ε₆₄, as a backward-stable solve. None — the float64 path
    decides — when λ is below Cholesky's shift (CHOLESKY_MIN_SHIFT), when float32 lost a
    column, or when the corrections stop halving (an ill-conditioned X).
    """
    problem, y_mean = centred_problem(X, y, fit_intercept, caller)
    G, diagonal = centred_gram_float32(X, problem.x_mean)
    refuse_non_finite(X, caller, diagonal)  # entries whose squares overflow
    if 2 * lam < CHOLESKY_MIN_SHIFT * float(diagonal.sum()) or not faithful(G, diagonal):
        return None
    G.diagonal().add_(2 * lam)
    L, info = torch.linalg.cholesky_ex(G)
    if int(info) != 0:
        return None
    w, previous = torch.cholesky_solve(problem.c[:, None], L)[:, 0], math.inf
    for _ in range(RIDGE_REFINE_MAX_ROUNDS):
        residual = problem.correlation(w) - 2 * lam * w
        step = torch.cholesky_solve(residual[:, None], L)[:, 0]
        w = w + step
        size = float(step.abs().max())
        rounding = 4 * torch.finfo(w.dtype).eps * float(w.abs().max())
        # done when this step, or the next one the contraction so far predicts, is rounding
        if size <= rounding or (previous < math.inf and size * (size / previous) <= rounding):
            return w, problem.x_mean, y_mean
        if size > 0.5 * previous:
            return None
        previous = size
    return None


def ridge(X: Tensor, y: Tensor, lam: float, *, fit_intercept: bool = False) -> LinearFit:
    """argmin ½‖Xw − y‖² + λ‖w‖²: ŵ = (XᵀX + 2λI)⁻¹Xᵀy, by Cholesky, or by the SVD for λ = 0 and
    tiny λ (minimum-norm least squares at λ = 0; see the module docstring)."""
    lam = check_finite_number("lam", lam, caller="ridge", nonnegative=True)
    X, y, dtype = _check_xy(X, y, "ridge")
    X, offset = _without_offsets(X, fit_intercept)
    return _with_offsets(_ridge(X, y, lam, fit_intercept, dtype, "ridge"), offset)


def _ridge(
    X: Tensor, y: Tensor, lam: float, fit_intercept: bool, dtype: torch.dtype, caller: str
) -> LinearFit:
    n, d = X.shape
    if d <= n and lam > 0 and n * d * d > WORKING_SET_MIN_WORK:
        refined = _ridge_refined(X, y, lam, fit_intercept, caller)
        if refined is not None:
            return _finish(*refined, fit_intercept, 0, dtype)
    if d <= n:
        G, c, x_mean, y_mean = _normal_equations(X, y, fit_intercept, caller)
        if 2 * lam >= CHOLESKY_MIN_SHIFT * float(G.diagonal().sum()) and lam > 0:
            A = G + 2 * lam * torch.eye(d, dtype=G.dtype, device=G.device)
            L, info = torch.linalg.cholesky_ex(A)
            if int(info) == 0:
                w = torch.cholesky_solve(c[:, None], L)[:, 0]
                return _finish(w, x_mean, y_mean, fit_intercept, 0, dtype)
    else:
        refuse_non_finite(X, caller)
    x_mean = X.mean(0) if fit_intercept else X.new_zeros(d)
    y_mean = y.mean() if fit_intercept else X.new_zeros(())
    if d > n and lam > 0:
        # n < d: the same ŵ = Xᵀ(XXᵀ + 2λI)⁻¹y costs an n×n solve
        Xc, yc = X - x_mean, y - y_mean
        K = Xc @ Xc.T
        if 2 * lam >= CHOLESKY_MIN_SHIFT * float(K.diagonal().sum()):
            L, info = torch.linalg.cholesky_ex(K + 2 * lam * torch.eye(n, dtype=X.dtype))
            if int(info) == 0:
                alpha = torch.cholesky_solve(yc[:, None], L)[:, 0]
                return _finish(Xc.T @ alpha, x_mean, y_mean, fit_intercept, 0, dtype)
    w = _svd_solve(X - x_mean, y - y_mean, lam)
    return _finish(w, x_mean, y_mean, fit_intercept, 0, dtype)


def lasso(
    X: Tensor, y: Tensor, lam: float, *, fit_intercept: bool = False, max_iter: int = 100_000
) -> LinearFit:
    """argmin ½‖Xw − y‖² + λ‖w‖₁ (= scikit-learn ``Lasso(alpha=λ/n)``)."""
    return elastic_net(
        X, y, lam, 0.0, fit_intercept=fit_intercept, max_iter=max_iter, caller="lasso"
    )


def elastic_net(
    X: Tensor,
    y: Tensor,
    lam: float,
    beta: float,
    *,
    fit_intercept: bool = False,
    max_iter: int = 100_000,
    caller: str = "elastic_net",
) -> LinearFit:
    """argmin ½‖Xw − y‖² + λ(β‖w‖² + ‖w‖₁) (see the module docstring for scikit-learn's α).

    ``converged=False`` in the result (and a :class:`ConvergenceWarning`) when `max_iter`
    iterations ended before the KKT conditions certified the answer.
    """
    lam = check_finite_number("lam", lam, caller=caller, nonnegative=True)
    beta = check_finite_number("beta", beta, caller=caller, nonnegative=True)
    check_positive_int("max_iter", max_iter, caller=caller)
    X, y, dtype = _check_xy(X, y, caller)
    X, offset = _without_offsets(X, fit_intercept)
    if lam == 0:  # least squares: an exact answer without iterating
        refuse_non_finite(X, caller)
        fit = _ridge(X, y, 0.0, fit_intercept, dtype, caller)
    else:
        fit = _l1_fit(X, y, lam, beta, fit_intercept, max_iter, dtype, caller)
    if not fit.converged:
        warnings.warn(
            f"{caller}: stopped at max_iter={max_iter} before the KKT conditions held; the "
            "coefficients are FISTA's last iterate (result.converged is False).",
            ConvergenceWarning,
            stacklevel=3 if caller == "lasso" else 2,
        )
    return _with_offsets(fit, offset)


def _l1_fit(
    X: Tensor,
    y: Tensor,
    lam: float,
    beta: float,
    fit_intercept: bool,
    max_iter: int,
    dtype: torch.dtype,
    caller: str,
) -> LinearFit:
    n, d = X.shape
    if n * d * d > WORKING_SET_MIN_WORK:  # the Gram matrix of the working set only
        problem, y_mean = centred_problem(X, y, fit_intercept, caller)
        x_mean = problem.x_mean
        w, n_iter, converged = l1_working_set(problem, lam, lam * beta, max_iter, caller)
    else:
        G, c, x_mean, y_mean = _normal_equations(X, y, fit_intercept, caller)
        w, n_iter, converged = l1_solve(G, c, lam, lam * beta, max_iter)
    return _finish(w, x_mean, y_mean, fit_intercept, n_iter, dtype, converged)


def sklearn_alpha(kind: str, lam: float, n: int, beta: float = 0.0) -> dict[str, float]:
    """scikit-learn's parameters for the same solution (see the module docstring)."""
    if kind == "ridge":
        return {"alpha": 2 * lam}
    if kind == "lasso":
        return {"alpha": lam / n}
    return {"alpha": lam * (1 + 2 * beta) / n, "l1_ratio": 1 / (1 + 2 * beta)}
