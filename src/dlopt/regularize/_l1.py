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

A dense solution needs the whole Gram matrix, n·d² flops: that product is formed in float32
(half the time) and the answer refined to float64 by exact correlations (:func:`l1_refined`),
with the float64 Gram as the fallback where float32 is too coarse for X. On 20000 × 500 with
371 non-zero coefficients: 136 → 76 ms, against 85 for scikit-learn's coordinate descent
(`tools/ab_bench.py linear`, 12 runs in turns).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.linalg.lapack import dpocon, dpotrf, dpotrs
from torch import Tensor

from dlopt.regularize._passes import (
    Centred,
    centred_gram_float32,
    faithful,
    gram,
    refuse_non_finite,
)


def soft_threshold(z: Tensor, threshold: float | Tensor) -> Tensor:
    """The proximal map of t‖·‖₁: sign(z)·max(|z| − t, 0). Gives exact zeros."""
    return torch.sign(z) * torch.clamp(z.abs() - threshold, min=0)


SUPPORT_CHOLESKY_MIN_RCOND = 1e-8
"""polish solves on the support by Cholesky when LAPACK's estimate of 1/cond (dpocon) is at
least this, and by the eigendecomposition otherwise. Where Cholesky is used, eigh would drop
no eigenvalue (its cutoff is |S|·ε·λ_max) and both answers agree to cond·ε ≤ 10⁻⁸ relative;
Cholesky costs |S|³/3 flops against eigh's ~9|S|³ (371 columns: 0.6 against 18 ms)."""


class CoarseGram(Exception):
    """Raised by polish when the support's matrix is too ill-conditioned for the refinement
    on a float32 Gram matrix to contract (see REFINE_MIN_RCOND)."""


def _support_solve(A: Tensor, b: Tensor, min_rcond: float = 0.0) -> Tensor:
    """A⁻¹b for a positive semi-definite A, minimum-norm where A is (nearly) singular: with
    A = QΛQᵀ, eigenvalues below |S|·ε·λ_max dropped; by Cholesky when A is well conditioned
    (on the CPU, see SUPPORT_CHOLESKY_MIN_RCOND). CoarseGram where 1/cond(A) < `min_rcond`."""
    if A.device.type == "cpu":
        An = A.numpy()
        factor, info = dpotrf(An, lower=1, clean=0)
        if info == 0:
            rcond, info = dpocon(factor, float(np.abs(An).sum(0).max()), uplo="L")
            if info == 0 and rcond >= max(SUPPORT_CHOLESKY_MIN_RCOND, min_rcond):
                x, info = dpotrs(factor, b.numpy()[:, None], lower=1)
                if info == 0:
                    return torch.from_numpy(x[:, 0])
    values, Q = torch.linalg.eigh(A)
    top = max(float(values[-1]), 0.0)
    if min_rcond > 0 and float(values[0]) < min_rcond * top:
        raise CoarseGram
    cutoff = A.shape[0] * torch.finfo(A.dtype).eps * top
    inverse = torch.where(values > cutoff, 1 / values, torch.zeros_like(values))
    return Q @ (inverse * (Q.T @ b))


def kkt_violation(correlation: Tensor, w: Tensor, lam: float, l2: float) -> float:
    """How far w misses the KKT conditions of ½wᵀGw − cᵀw + l2‖w‖² + lam‖w‖₁, given
    correlation = c − Gw (= X_cᵀ(y_c − X_c w)): X_jᵀr − 2·l2·w_j = lam·sign(w_j) on the
    support, |X_jᵀr| ≤ lam off it. 0 when they hold exactly."""
    support = w != 0
    worst = 0.0
    if support.any():
        on = correlation[support] - 2 * l2 * w[support] - lam * torch.sign(w[support])
        worst = float(on.abs().max())
    off = ~support
    if off.any():
        worst = max(worst, float(correlation[off].abs().max()) - lam)
    return worst


def kkt_slack(c: Tensor, lam: float) -> float:
    """The rounding a certified answer may leave in the KKT conditions (see kkt_violation):
    10⁻⁹ of the larger of λ and ‖c‖∞ — relative, so that it means the same at any scale of
    X and y (an absolute floor of 10⁻⁹ certified float32-accurate answers when ‖c‖∞ ≪ 1)."""
    return 1e-9 * max(float(c.abs().max()) if c.numel() else 0.0, lam)


def polish(
    G: Tensor, c: Tensor, w: Tensor, lam: float, l2: float, min_rcond: float = 0.0
) -> Tensor | None:
    """Exact solution on w's support and signs, or None if the KKT conditions fail.

    The minimum-norm solve on the support: A = X_SᵀX_S + 2·l2·I (see _support_solve), so
    collinear columns (a singular A) are solved too; an inconsistent system (no solution with
    these signs) fails the KKT test on the support. CoarseGram where 1/cond(A) < `min_rcond`.
    """
    support = w != 0
    signs = torch.sign(w[support])
    exact = torch.zeros_like(w)
    if support.any():
        A = G[support][:, support]
        A.diagonal().add_(2 * l2)
        w_s = _support_solve(A, c[support] - lam * signs, min_rcond)
        if not torch.equal(torch.sign(w_s), signs):
            return None
        exact[support] = w_s
    if kkt_violation(c - G @ exact, exact, lam, l2) > kkt_slack(c, lam):
        return None
    return exact


POWER_ITERATIONS = 8
"""Power iterations for FISTA's first Lipschitz estimate (backtracking corrects it)."""


def _lipschitz_guess(G: Tensor) -> float:
    """An estimate of λ_max(G) from below: the Rayleigh quotient after POWER_ITERATIONS power
    iterations from a fixed pseudo-random start (eigvalsh: 11 ms at d = 500, this: 0.2)."""
    v = torch.randn(len(G), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    v = v.to(G.device, G.dtype)
    for _ in range(POWER_ITERATIONS):
        v = G @ v
        norm = float(torch.linalg.vector_norm(v))
        if not norm > 0 or not math.isfinite(norm):
            return 1.0
        v /= norm
    return max(float(v @ (G @ v)), 1e-300)


def l1_solve(
    G: Tensor,
    c: Tensor,
    lam: float,
    l2: float,
    max_iter: int,
    start: Tensor | None = None,
    min_rcond: float = 0.0,
) -> tuple[Tensor, int, bool]:
    """argmin ½wᵀGw − cᵀw + l2‖w‖² + lam‖w‖₁ by FISTA with restarts from `start` (default 0),
    then polishing: (w, iterations, certified). `min_rcond`: see polish.

    FISTA with backtracking (Beck & Teboulle 2009): the step is 1/L, L first 1.05× a power
    estimate of λ_max(G) + 2·l2, doubled whenever a step breaks the quadratic upper bound
    ΔᵀHΔ ≤ L‖Δ‖² (Δ = w_next − z, H = G + 2·l2·I) that the prox-gradient step relies on. Hw
    and Hz are carried along (Hz by the same combination as z), so each iteration costs one
    product with G, as with a fixed step.
    """
    d = G.shape[0]
    if d == 0:
        return G.new_zeros(0), 0, True
    zero = polish(G, c, G.new_zeros(d), lam, l2, min_rcond)
    if zero is not None:  # λ ≥ ‖Xᵀy‖∞: w = 0, certified before any iteration
        return zero, 0, True
    L = 1.05 * (_lipschitz_guess(G) + 2 * l2)
    w = G.new_zeros(d) if start is None else start.clone()
    Hw = G @ w + 2 * l2 * w
    z, Hz, t = w, Hw, 1.0
    previous_support = None
    for it in range(1, max_iter + 1):
        while True:
            w_next = soft_threshold(z - (Hz - c) / L, lam / L)
            Hw_next = G @ w_next + 2 * l2 * w_next
            delta = w_next - z
            # the step's four numbers in one read (one synchronisation on a GPU)
            dd, ww, curvature, restart = torch.stack(
                [delta @ delta, w_next @ w_next, delta @ (Hw_next - Hz), (w_next - w) @ -delta]
            ).tolist()
            # below ~1e-8 relative, Hw_next − Hz is rounding: no test (and no doubling)
            if dd <= 1e-16 * ww or curvature <= L * dd:
                break
            L *= 2
            if not math.isfinite(L):
                return w, it, False
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        if restart > 0:  # gradient-based restart (O'Donoghue–Candès): (w_next − w)·(z − w_next)
            t_next, z, Hz = 1.0, w_next, Hw_next
        else:
            momentum = (t - 1) / t_next
            z = w_next + momentum * (w_next - w)
            Hz = Hw_next + momentum * (Hw_next - Hw)
        w, Hw, t = w_next, Hw_next, t_next
        if it % 10 == 0:
            support = (w != 0).cpu()
            if previous_support is not None and torch.equal(support, previous_support):
                exact = polish(G, c, w, lam, l2, min_rcond)
                if exact is not None:
                    return exact, it, True
            previous_support = support
    exact = polish(G, c, w, lam, l2, min_rcond)  # a last try at the cap
    return (w, max_iter, False) if exact is None else (exact, max_iter, True)


WORKING_SET_MIN_WORK = 10**7
"""lasso/elastic_net use the working set when n·d² (the cost of the full Gram matrix) is above
this: below it the Gram is cheap and the two extra passes over X per round are not worth it."""

WORKING_SET_GROWTH = 32
"""Columns added to the working set per round, at least (at most as many as it holds)."""


def l1_working_set(
    problem: Centred, lam: float, l2: float, max_iter: int, caller: str = "lasso"
) -> tuple[Tensor, int, bool]:
    """argmin ½‖X_c w − y_c‖² + l2‖w‖² + lam‖w‖₁ by the working set of the module docstring:
    (w, iterations, certified). `caller` names the function in the error for entries whose
    squares overflow."""
    X, x_mean, c = problem.X, problem.x_mean, problem.c
    n, d = X.shape
    w = X.new_zeros(d)
    slack = kkt_slack(c, lam)
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
            refined = l1_refined(problem, lam, l2, max(max_iter - used, 1), w)
            if refined is not None:
                w, iterations, certified = refined
                return w, used + iterations, certified
            violators = ~inside  # float32 too coarse for this X: the float64 Gram
        else:
            budget = max(WORKING_SET_GROWTH, int(inside.sum()))  # W at most doubles per round
            if count > budget:  # the worst violators first
                worst = torch.topk(torch.where(violators, excess, -torch.inf), budget).indices
                violators = torch.zeros_like(inside)
                violators[worst] = True
        new = violators.nonzero().squeeze(1)
        inside |= violators
        X_new = X if new.numel() == d else X[:, new]  # a copy: BLAS on contiguous columns
        G_new = gram(X_new)
        refuse_non_finite(X_new, caller, G_new.diagonal())
        if cols.numel() == 0 or new.numel() == d:
            cols, X_w, G_w = new, X_new, G_new
        else:  # only the new blocks of G_W: X_WᵀX_new and X_newᵀX_new
            cross = X_w.T @ X_new
            G_w = torch.cat([torch.cat([G_w, cross], 1), torch.cat([cross.T, G_new], 1)], 0)
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
        excess = problem.correlation(w_w, X_w, cols).abs() - lam


REFINE_MAX_ROUNDS = 10
"""Rounds of l1_refined before it gives up and the caller forms the float64 Gram."""

REFINE_MIN_RCOND = 1e-6
"""l1_refined gives up (CoarseGram) on a support whose matrix has 1/cond below this: its rounds
contract by about ε₃₂·cond, 0.06 at this bound, and float32 makes columns that differ by less
than its rounding exactly equal — ten pairs of columns 10⁻⁹ apart cost 5000 FISTA iterations
and 500 eigendecompositions on G̃ (3.4 s) against 20 iterations on the float64 Gram."""

REFINE_MIN_BUDGET = 200
"""FISTA iterations l1_refined may spend, at least; at most n/4 (two products with the d × d
G̃ each: together about half the n·d² flops of the float64 Gram they are meant to save, not
counting the polishes). A guard behind REFINE_MIN_RCOND: before either, a column repeated up
to 10⁻⁷ ran 37870 iterations on G̃ (5 s), against 50 on the float64 Gram."""


def l1_refined(
    problem: Centred, lam: float, l2: float, max_iter: int, start: Tensor
) -> tuple[Tensor, int, bool] | None:
    """The full problem on a float32 Gram matrix G̃ ≈ G = X_cᵀX_c, refined to the float64
    answer: (w, iterations, certified), or None where float32 is too coarse for X.

    Iterative refinement, as for a linear system solved in lower precision (a proximal Newton
    method whose model Hessian is G̃): w_k solves the problem with G̃ and c̃_k exactly
    (FISTA + polish); the exact correlation ρ_k = X_cᵀ(y_c − X_c w_k) (one float64 pass over
    X, see correlation) gives c̃_{k+1} = G̃w_k + ρ_k, so that the G̃-problem's KKT residual at
    w_k is the true one. A fixed point satisfies the true KKT conditions, and each round
    shrinks the error by about ‖G̃⁻¹(G̃ − G)‖ (≈ ε₃₂·cond): on 20000 × 500 Gaussian data the
    second round is certified.
    The certificate is polish's KKT test on the exact ρ; when the violation does not shrink
    tenfold a round, the support is too ill-conditioned for float32 (REFINE_MIN_RCOND), or
    FISTA spends its budget (REFINE_MIN_BUDGET), the caller falls back to the float64 Gram.
    """
    G, diagonal = centred_gram_float32(problem.X, problem.x_mean)
    if not faithful(G, diagonal):
        return None
    slack, used, worst = kkt_slack(problem.c, lam), 0, math.inf
    budget = min(max_iter, max(REFINE_MIN_BUDGET, len(problem.X) // 4))
    c_tilde, w = problem.c, start
    for _ in range(REFINE_MAX_ROUNDS):
        try:
            exact = polish(G, c_tilde, w, lam, l2, REFINE_MIN_RCOND) if bool(w.any()) else None
            if exact is None:  # the support changed: FISTA from w
                exact, iterations, certified = l1_solve(
                    G, c_tilde, lam, l2, budget - used, w, REFINE_MIN_RCOND
                )
                used += iterations
                if not certified:  # the budget: the float64 path decides
                    return None
        except CoarseGram:  # a support float32 cannot resolve (near-duplicate columns)
            return None
        w = exact
        rho = problem.correlation(w)
        violation = kkt_violation(rho, w, lam, l2)
        if violation <= slack:
            return w, used, True
        if violation > 0.1 * worst or used >= budget:
            return None
        worst = violation
        c_tilde = G @ w + rho
    return None
