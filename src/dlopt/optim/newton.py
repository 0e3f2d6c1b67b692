"""Second-order directions: Newton with an exact, damped Hessian, and truncated Newton-CG.

From the second-order Taylor model f(x + δ) ≈ f + gᵀδ + ½δᵀHδ, the Newton step solves Hδ = −g.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from dlopt.optim.directions import Method, StepInfo
from dlopt.optim.objective import Evaluation


class Newton(Method):
    r"""Newton's method, δ = −H⁻¹g with the exact Hessian, solved by Cholesky.

    When H has no Cholesky factor (indefinite or singular), Cholesky with an added multiple
    of the identity (Nocedal & Wright Alg. 3.3): τ₀ = −min Hᵢᵢ + β when some Hᵢᵢ ≤ 0, else β,
    with β = 10⁻³·max|Hᵢᵢ|, doubled until H + τI factors — a descent direction, with τ at most
    twice the shift it needs. Such a shifted step minimizes no model (the quadratic one is
    unbounded below), and its length is set by τ alone; it is bounded by a radius Δ, as a
    trust region would bound it (Moré & Sorensen 1979; Nocedal & Yuan 1998 combine the two):
    Δ₀ = ``RADIUS``; a bounded step the line search takes whole doubles Δ, a step it shortens
    sets Δ to the length taken. A Newton step of a positive definite H is never bounded (on a
    quadratic it is the minimizer: one iteration, SPEC I8).

    Measured on MGH's battery against trust-exact (tools/mgh_table.py; evaluations): the
    former damping (μ from 10⁻³·max|Hᵢᵢ|, ×10 until H + μI factored, no bound) overshot the
    shift up to tenfold and crawled through a long indefinite stretch — Biggs EXP6 116 against
    39, Kowalik–Osborne 20 against 9 (worst 2.97×). The shift alone: 85 and 20. With the bound,
    Δ₀ = 0.1: 77 and 14 (worst 1.97×, Biggs EXP6), median 1.00; Δ₀ = 0.5: 83 and 14; Δ₀ = 1
    (trust-exact's first radius): 66 and 21. Biggs EXP6 is sensitive to the path: the
    eigenvalue modification Q|Λ|Qᵀ (Greenstadt 1967) took 23 but ended in its local minimum
    f = 5.66e-3, where trust-exact finds f* = 0. For small n only: forming H costs n
    Hessian-vector products (batched) and n² memory.
    """

    name = "newton"
    needs_curvature = True
    scaled = True
    RADIUS = 0.1  # Δ₀, the first bound on a shifted step's length

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.radius = self.RADIUS
        self.capped = False

    def direction(self, g: Tensor, at: Evaluation, gg: float) -> tuple[Tensor, float | None]:
        d, shifted = self._solve(g, at)
        self.capped = False
        if not shifted:  # H positive definite: the model's minimizer, uncapped
            return d, None
        length = float(torch.linalg.vector_norm(d))
        self.capped = length > self.radius
        if self.capped:
            d = d * (self.radius / length)
        return d, None

    def step_taken(self, d: Tensor, g_old: Tensor, g_new: Tensor, info: StepInfo) -> None:
        if info.unit:
            if self.capped:
                self.radius *= 2
        elif info.t > 0:
            length = info.t * float(torch.linalg.vector_norm(d))
            if math.isfinite(length) and length > 0:
                self.radius = length

    def state_dict(self) -> dict[str, Any]:
        return {"radius": self.radius}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.radius = float(state.get("radius", self.RADIUS))

    def _solve(self, g: Tensor, at: Evaluation) -> tuple[Tensor, bool]:
        """(δ, whether H was shifted to make it positive definite)."""
        assert at.hessian is not None
        H = at.hessian()
        if not bool(torch.isfinite(H).all()):
            return -g, True
        if H.dtype not in (torch.float32, torch.float64):  # half, bfloat16: no Cholesky
            d, shifted = self._solve_in(H.float(), g.float())
            return d.to(g.dtype), shifted
        return self._solve_in(H, g)

    @staticmethod
    def _solve_in(H: Tensor, g: Tensor) -> tuple[Tensor, bool]:
        L, info = torch.linalg.cholesky_ex(H)
        if int(info) == 0:
            return -torch.cholesky_solve(g[:, None], L)[:, 0], False
        diagonal = H.diagonal()
        beta = 1e-3 * max(float(diagonal.abs().max()), 1e-12)
        smallest = float(diagonal.min())
        tau = beta - smallest if smallest <= 0 else beta
        eye = torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
        for _ in range(100):
            L, info = torch.linalg.cholesky_ex(H + tau * eye)
            if int(info) == 0:
                return -torch.cholesky_solve(g[:, None], L)[:, 0], True
            tau *= 2
        return -g, True


class NewtonCG(Method):
    r"""Truncated Newton (Hessian-free): solve Hδ = −g by conjugate gradient on Hv products.

    CG stops when ‖Hδ + g‖₁ ≤ η‖g‖₁ with the forcing term η = min(0.5, √‖g‖₁) (Eisenstat–Walker,
    in scipy's norms), after `max_cg` products, or on negative curvature pᵀHp ≤ 0. At the first
    product that gives the steepest-descent step scaled by the curvature, (gᵀg/|gᵀHg|)·(−g);
    later, the last iterate z plus the direction of negative curvature, signed to descend and of
    length |λ| = |pᵀHp|/‖p‖² (as Royer & Wright's Newton-CG, 2018). scipy returns z alone, and
    near a saddle its steps creep: on Wood's function its Newton-CG stalls at the saddle
    (f ≈ 7.88), where this one goes on to the minimum in ~130 evaluations. H is never formed;
    each product reuses the gradient's graph.
    """

    name = "newton-cg"
    needs_curvature = True
    # a truncated or curvature-bent step is often far too long: always trying t = 1 first cost
    # 2.5 evaluations per iteration (median, 24 small MLPs; tools/newton_cg_mlps.py), scipy 1.5
    # (it repeats the last decrease of f, at most t = 1). t = 1 while it is taken, else scipy's
    # step: 1.5, and evaluations 1.31 → 0.90 × scipy's (median), Hv products unchanged (0.6 ×)
    first_trial = "unit-while-taken"

    def __init__(self, max_cg: int = 0) -> None:
        self.max_cg = max_cg  # 0: 20·n, as scipy

    def direction(self, g: Tensor, at: Evaluation, gg: float) -> tuple[Tensor, float | None]:
        return self._solve(g, at, gg), None

    def _solve(self, g: Tensor, at: Evaluation, rr: float) -> Tensor:
        assert at.hvp is not None
        g1 = float(g.abs().sum())
        tolerance = min(0.5, math.sqrt(g1)) * g1
        z = torch.zeros_like(g)
        r, p = g.clone(), -g
        r1 = g1
        for j in range(self.max_cg or 20 * g.numel()):
            if r1 <= tolerance:
                return z
            Hp = at.hvp(p)
            pHp = float(p @ Hp)
            if not math.isfinite(pHp) or pHp <= 0:
                if not (math.isfinite(pHp) and pHp < 0):  # zero or non-finite curvature
                    return -g if j == 0 else z
                if j == 0:
                    return (rr / -pHp) * -g
                return z + self._negative_curvature_step(g, p, pHp)
            alpha = rr / pHp
            z.add_(p, alpha=alpha)
            r.add_(Hp, alpha=alpha)
            rr_new, r1 = torch.stack([r @ r, r.abs().sum()]).tolist()
            p = -r + (rr_new / rr) * p
            rr = rr_new
        return z

    @staticmethod
    def _negative_curvature_step(g: Tensor, p: Tensor, pHp: float) -> Tensor:
        """p scaled to length |λ| = |pᵀHp|/‖p‖² and signed so that gᵀ(step) ≤ 0."""
        pp, gp = torch.stack([p @ p, g @ p]).tolist()
        return p * (-math.copysign(1.0, gp) * (-pHp / pp) / math.sqrt(pp))
