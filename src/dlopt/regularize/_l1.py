"""The l1 solvers behind :func:`~dlopt.regularize.lasso` and :func:`~dlopt.regularize.elastic_net`:
FISTA on a Gram matrix with exact polishing (see :mod:`dlopt.regularize.linear`), and, for
large n·d², a working set that only ever forms the Gram matrix of the columns that matter.

Working set (KKT checks as in glmnet, growth as in celer, Massias et al. 2018): with
c = X_cᵀy_c, start from the 32 columns with the largest |c_j| > λ (those whose w_j = 0 violates
the KKT condition |X_jᵀr| ≤ λ the most); solve the problem restricted to W exactly (FISTA +
polish on G_W = X_WᵀX_W − n·x̄_W x̄_Wᵀ: |W|² entries instead of d²); then compute every
correlation X_cᵀ(y_c − X_c,W ŵ_W), two passes over X. The restricted answer is the full answer
iff every j ∉ W has |X_jᵀr| ≤ λ (w_j = 0 satisfies its KKT condition); otherwise the worst
violators (at most max(32, |W|) of them) join W and the restricted problem is solved again.
G_W grows by its new blocks only (X_WᵀX_new, X_newᵀX_new); once W and the violators would hold
more than half the columns, W takes them all (a dense solution: the Gram path's cost). The
certificate is the same KKT test as the Gram path's, so both give the same ŵ to rounding
wherever the minimizer is unique.
"""

from __future__ import annotations

import torch
from torch import Tensor


def gram(X: Tensor) -> Tensor:
    """XᵀX. On CPU numpy's matmul recognises XᵀX and calls BLAS syrk: half the flops of gemm."""
    if X.device.type == "cpu":
        Xn = X.numpy()
        return torch.from_numpy(Xn.T @ Xn)
    return X.T @ X


def soft_threshold(z: Tensor, threshold: float | Tensor) -> Tensor:
    """The proximal map of t‖·‖₁: sign(z)·max(|z| − t, 0). Gives exact zeros."""
    return torch.sign(z) * torch.clamp(z.abs() - threshold, min=0)


def polish(G: Tensor, c: Tensor, w: Tensor, lam: float, l2: float) -> Tensor | None:
    """Exact solution on w's support and signs, or None if the KKT conditions fail.

    The minimum-norm solve on the support: with A = X_SᵀX_S + 2·l2·I = QΛQᵀ, eigenvalues
    below |S|·ε·λ_max dropped, so collinear columns (a singular A) are solved too; an
    inconsistent system (no solution with these signs) fails the KKT test on the support.
    """
    support = w != 0
    signs = torch.sign(w[support])
    exact = torch.zeros_like(w)
    if support.any():
        A = G[support][:, support] + 2 * l2 * torch.eye(
            int(support.sum()), dtype=G.dtype, device=G.device
        )
        values, Q = torch.linalg.eigh(A)
        cutoff = A.shape[0] * torch.finfo(A.dtype).eps * max(float(values[-1]), 0.0)
        inverse = torch.where(values > cutoff, 1 / values, torch.zeros_like(values))
        w_s = Q @ (inverse * (Q.T @ (c[support] - lam * signs)))
        if not torch.equal(torch.sign(w_s), signs):
            return None
        exact[support] = w_s
    correlation = c - G @ exact  # Xᵀ(y − Xw)
    slack = 1e-9 * max(1.0, float(c.abs().max()), lam)
    if support.any():
        on = correlation[support] - 2 * l2 * exact[support] - lam * signs
        if float(on.abs().max()) > slack:
            return None
    off = ~support
    if off.any() and float(correlation[off].abs().max()) > lam + slack:
        return None
    return exact


def l1_solve(
    G: Tensor, c: Tensor, lam: float, l2: float, max_iter: int
) -> tuple[Tensor, int, bool]:
    """argmin ½wᵀGw − cᵀw + l2‖w‖² + lam‖w‖₁ by FISTA with restarts, then polishing:
    (w, iterations, certified)."""
    d = G.shape[0]
    if d == 0:
        return G.new_zeros(0), 0, True
    zero = polish(G, c, G.new_zeros(d), lam, l2)
    if zero is not None:  # λ ≥ ‖Xᵀy‖∞: w = 0, certified before any iteration
        return zero, 0, True
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
                exact = polish(G, c, w, lam, l2)
                if exact is not None:
                    return exact, it, True
            previous_support = support
    exact = polish(G, c, w, lam, l2)  # a last try at the cap
    return (w, max_iter, False) if exact is None else (exact, max_iter, True)


WORKING_SET_MIN_WORK = 10**7
"""lasso/elastic_net use the working set when n·d² (the cost of the full Gram matrix) is above
this: below it the Gram is cheap and the two extra passes over X per round are not worth it."""

WORKING_SET_GROWTH = 32
"""Columns added to the working set per round, at least (at most as many as it holds)."""


def l1_working_set(
    X: Tensor,
    y_centred: Tensor,
    x_mean: Tensor,
    c: Tensor,
    lam: float,
    l2: float,
    max_iter: int,
) -> tuple[Tensor, int, bool]:
    """argmin ½‖X_c w − y_c‖² + l2‖w‖² + lam‖w‖₁, X_c = X − 1x̄ᵀ (x̄ = 0 without intercept),
    c = X_cᵀy_c, by the working set of the module docstring: (w, iterations, certified)."""
    n, d = X.shape
    w = X.new_zeros(d)
    lam_max = float(c.abs().max()) if d else 0.0
    slack = 1e-9 * max(1.0, lam_max, lam)
    inside = torch.zeros(d, dtype=torch.bool, device=X.device)
    excess = c.abs() - lam  # at w = 0: how far each |X_jᵀr| exceeds λ
    used = 0
    cols = torch.zeros(0, dtype=torch.long, device=X.device)  # W, in the order it grew
    X_w = G_w = X.new_zeros(0)  # X[:, cols] and its Gram matrix XᵀX (uncentred)
    while True:
        violators = (excess > slack) & ~inside
        count = int(violators.sum())
        if count == 0:
            return w, used, True
        if used >= max_iter:
            return w, used, False
        if 2 * int((inside | violators).sum()) > d:  # W would hold most columns: all of them
            violators = ~inside
        else:
            budget = max(WORKING_SET_GROWTH, int(inside.sum()))  # W at most doubles per round
            if count > budget:  # the worst violators first
                worst = torch.topk(torch.where(violators, excess, -torch.inf), budget).indices
                violators = torch.zeros_like(inside)
                violators[worst] = True
        new = violators.nonzero().squeeze(1)
        inside |= violators
        X_new = X if new.numel() == d else X[:, new]  # a copy: BLAS on contiguous columns
        if cols.numel() == 0 or new.numel() == d:
            cols, X_w, G_w = new, X_new, gram(X_new)
        else:  # only the new blocks of G_W: X_WᵀX_new and X_newᵀX_new
            cross = X_w.T @ X_new
            G_w = torch.cat([torch.cat([G_w, cross], 1), torch.cat([cross.T, gram(X_new)], 1)], 0)
            cols, X_w = torch.cat([cols, new]), torch.cat([X_w, X_new], 1)
        centring = n * torch.outer(x_mean[cols], x_mean[cols])  # X_cᵀX_c = XᵀX − n·x̄x̄ᵀ
        w_w, iterations, certified = l1_solve(
            G_w - centring, c[cols], lam, l2, max(max_iter - used, 1)
        )
        used += iterations
        w = X.new_zeros(d)
        w[cols] = w_w
        if not certified or cols.numel() == d:  # with every column, l1_solve's KKT test is final
            return w, used, certified
        residual = y_centred - (X_w @ w_w - x_mean[cols] @ w_w)  # y_c − X_c w
        correlation = X.T @ residual - x_mean * residual.sum()  # X_cᵀ r
        excess = correlation.abs() - lam
