"""Penalized linear least squares (SPEC C4): ridge, lasso and elastic net, with prediction y = xᵀŵ.

Objectives (n samples, X of shape (n, d)):

    ridge        ½‖Xw − y‖² + λ‖w‖²             ŵ = (XᵀX + 2λI)⁻¹Xᵀy   (the notes' formula)
    lasso        ½‖Xw − y‖² + λ‖w‖₁
    elastic net  ½‖Xw − y‖² + λ(β‖w‖² + ‖w‖₁)

scikit-learn scales the data term by 1/n, so the same solutions are
``Ridge(alpha=2λ)``, ``Lasso(alpha=λ/n)`` and ``ElasticNet(alpha=λ(1+2β)/n,
l1_ratio=1/(1+2β))``, all with ``fit_intercept`` as here. With ``fit_intercept=True`` X and y
are centred first and the unpenalized intercept is b = ȳ − x̄ᵀŵ.

Ridge is solved by Cholesky (never an explicit inverse). Lasso and elastic net run FISTA on the
Gram matrix until the active set settles, then *polish*: on the support S with signs s the
solution solves (X_SᵀX_S + 2λβI)w_S = X_Sᵀy − λs exactly; the KKT conditions
|X_jᵀ(y − Xw)| ≤ λ off the support certify it, so results are exact to rounding, not to a
tolerance. Everything runs in float64 on the inputs' device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dlopt._validation import check_finite_number


@dataclass(frozen=True)
class LinearFit:
    """Coefficients `coef` (d,), `intercept` (0.0 without one) and the iterations used."""

    coef: Tensor
    intercept: float
    n_iter: int = 0

    def predict(self, X: Tensor) -> Tensor:
        """y = xᵀŵ + b for each row of X."""
        return X.to(self.coef.dtype) @ self.coef + self.intercept


def _check_xy(X: Tensor, y: Tensor, caller: str) -> tuple[Tensor, Tensor]:
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    if X.dim() != 2 or y.dim() != 1 or len(X) != len(y):
        raise ValueError(
            f"{caller}(X, y) needs X of shape (n, d) and y of shape (n,); got "
            f"{tuple(X.shape)} and {tuple(y.shape)}."
        )
    X, y = X.to(torch.float64), y.to(device=X.device, dtype=torch.float64)
    if not bool(torch.isfinite(y).all()):
        raise ValueError(f"{caller}(X, y): y must be finite; found NaN or inf.")
    return X, y


def _gram(X: Tensor) -> Tensor:
    """XᵀX. On CPU numpy's matmul recognises XᵀX and calls BLAS syrk: half the flops of gemm."""
    if X.device.type == "cpu":
        Xn = X.numpy()
        return torch.from_numpy(Xn.T @ Xn)
    return X.T @ X


def _normal_equations(
    X: Tensor, y: Tensor, fit_intercept: bool, caller: str
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(G, c, x̄, ȳ) with G = X_cᵀX_c and c = X_cᵀy_c for the centred data, without centring X.

    Uses X_cᵀX_c = XᵀX − n·x̄x̄ᵀ (no copy of X). A NaN or inf anywhere in X reaches G's
    diagonal (x² is inf or NaN), so checking G replaces a pass over X.
    """
    n = X.shape[0]
    G, c = _gram(X), X.T @ y
    if not bool(torch.isfinite(G.diagonal()).all()):
        raise ValueError(f"{caller}(X, y): X must be finite; found NaN or inf.")
    if fit_intercept:
        x_mean, y_mean = X.mean(0), y.mean()
        G = G - n * torch.outer(x_mean, x_mean)
        c = c - n * x_mean * y_mean
        return G, c, x_mean, y_mean
    return G, c, X.new_zeros(X.shape[1]), X.new_zeros(())


def _finish(
    w: Tensor, x_mean: Tensor, y_mean: Tensor, fit_intercept: bool, n_iter: int
) -> LinearFit:
    intercept = float(y_mean - x_mean @ w) if fit_intercept else 0.0
    return LinearFit(w, intercept, n_iter)


def ridge(X: Tensor, y: Tensor, lam: float, *, fit_intercept: bool = False) -> LinearFit:
    """argmin ½‖Xw − y‖² + λ‖w‖²: ŵ = (XᵀX + 2λI)⁻¹Xᵀy by Cholesky (see module docstring)."""
    lam = check_finite_number("lam", lam, caller="ridge")
    if lam < 0:
        raise ValueError(f"ridge(lam=...) must be >= 0; got {lam!r}.")
    X, y = _check_xy(X, y, "ridge")
    n, d = X.shape
    if d <= n:
        G, c, x_mean, y_mean = _normal_equations(X, y, fit_intercept, "ridge")
        A = G + 2 * lam * torch.eye(d, dtype=G.dtype, device=G.device)
        L, info = torch.linalg.cholesky_ex(A)
        w = (
            torch.cholesky_solve(c[:, None], L)[:, 0]
            if int(info) == 0
            else torch.linalg.lstsq(A, c).solution
        )
        return _finish(w, x_mean, y_mean, fit_intercept, 0)
    # n < d: the same ŵ = Xᵀ(XXᵀ + 2λI)⁻¹y costs an n×n solve
    if not bool(torch.isfinite(X).all()):
        raise ValueError("ridge(X, y): X must be finite; found NaN or inf.")
    x_mean = X.mean(0) if fit_intercept else X.new_zeros(d)
    y_mean = y.mean() if fit_intercept else X.new_zeros(())
    Xc, yc = X - x_mean, y - y_mean
    K = Xc @ Xc.T + 2 * lam * torch.eye(n, dtype=X.dtype, device=X.device)
    L, info = torch.linalg.cholesky_ex(K)
    alpha = (
        torch.cholesky_solve(yc[:, None], L)[:, 0]
        if int(info) == 0
        else torch.linalg.lstsq(K, yc).solution
    )
    return _finish(Xc.T @ alpha, x_mean, y_mean, fit_intercept, 0)


def soft_threshold(z: Tensor, threshold: float | Tensor) -> Tensor:
    """The proximal map of t‖·‖₁: sign(z)·max(|z| − t, 0). Gives exact zeros."""
    return torch.sign(z) * torch.clamp(z.abs() - threshold, min=0)


def _polish(G: Tensor, c: Tensor, w: Tensor, lam: float, l2: float) -> Tensor | None:
    """Exact solution on w's support and signs, or None if the KKT conditions fail."""
    support = w != 0
    signs = torch.sign(w[support])
    if support.any():
        A = G[support][:, support] + 2 * l2 * torch.eye(
            int(support.sum()), dtype=G.dtype, device=G.device
        )
        w_s = torch.linalg.solve(A, c[support] - lam * signs)
        if not torch.equal(torch.sign(w_s), signs):
            return None
        exact = torch.zeros_like(w)
        exact[support] = w_s
    else:
        exact = torch.zeros_like(w)
    correlation = c - G @ exact  # Xᵀ(y − Xw)
    off = ~support
    slack = 1e-9 * max(1.0, float(c.abs().max()))
    if off.any() and float(correlation[off].abs().max()) > lam + slack:
        return None
    return exact


def _l1_solve(G: Tensor, c: Tensor, lam: float, l2: float, max_iter: int) -> tuple[Tensor, int]:
    """argmin ½wᵀGw − cᵀw + l2‖w‖² + lam‖w‖₁ by FISTA with restarts, then polishing."""
    d = G.shape[0]
    if d == 0:
        return G.new_zeros(0), 0
    step = 1.0 / (float(torch.linalg.eigvalsh(G)[-1]) + 2 * l2 + 1e-300)
    w = torch.zeros(d, dtype=G.dtype, device=G.device)
    z, t = w.clone(), 1.0
    previous_support = None
    for it in range(1, max_iter + 1):
        grad = G @ z - c + 2 * l2 * z
        w_next = soft_threshold(z - step * grad, step * lam)
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        if float((w_next - w) @ (z - w_next)) > 0:  # gradient-based restart (O'Donoghue–Candès)
            t_next, z = 1.0, w_next
        else:
            z = w_next + ((t - 1) / t_next) * (w_next - w)
        w, t = w_next, t_next
        if it % 10 == 0:
            support = (w != 0).cpu()
            if previous_support is not None and torch.equal(support, previous_support):
                exact = _polish(G, c, w, lam, l2)
                if exact is not None:
                    return exact, it
            previous_support = support
    return w, max_iter


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
    """argmin ½‖Xw − y‖² + λ(β‖w‖² + ‖w‖₁) (see the module docstring for scikit-learn's α)."""
    lam = check_finite_number("lam", lam, caller=caller)
    beta = check_finite_number("beta", beta, caller=caller)
    if lam < 0 or beta < 0:
        raise ValueError(f"{caller}(lam, beta) must be >= 0; got {lam!r}, {beta!r}.")
    X, y = _check_xy(X, y, caller)
    G, c, x_mean, y_mean = _normal_equations(X, y, fit_intercept, caller)
    w, n_iter = _l1_solve(G, c, lam, lam * beta, max_iter)
    return _finish(w, x_mean, y_mean, fit_intercept, n_iter)


def sklearn_alpha(kind: str, lam: float, n: int, beta: float = 0.0) -> dict[str, float]:
    """scikit-learn's parameters for the same solution (see the module docstring)."""
    if kind == "ridge":
        return {"alpha": 2 * lam}
    if kind == "lasso":
        return {"alpha": lam / n}
    return {"alpha": lam * (1 + 2 * beta) / n, "l1_ratio": 1 / (1 + 2 * beta)}
