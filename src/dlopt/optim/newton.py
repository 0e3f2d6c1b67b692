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
    sets Δ to the length taken. A Newton step of a positive definite H is bounded too, but
    only once the line search has shortened some step (t < 1): until then it is the model's
    minimizer taken whole (on a quadratic: one iteration, SPEC I8); after, a step the line
    search would cut again is cut at once, without the evaluation a backtrack costs.

    Measured on MGH's battery against trust-exact (tools/mgh_table.py; evaluations): the
    former damping (μ from 10⁻³·max|Hᵢᵢ|, ×10 until H + μI factored, no bound) overshot the
    shift up to tenfold and crawled through a long indefinite stretch — Biggs EXP6 116 against
    39, Kowalik–Osborne 20 against 9 (worst 2.97×). The shift alone: 85 and 20. With the bound,
    Δ₀ = 0.1: 77 and 14 (worst 1.97×, Biggs EXP6), median 1.00; Δ₀ = 0.5: 83 and 14; Δ₀ = 1
    (trust-exact's first radius): 66 and 21. Bounding positive definite steps after a
    shortened one (2026-12-03): the battery's 43 problems 1095 → 1034 evaluations, Biggs EXP6
    84 → 78, Penalty II (n = 4) 141 → 123, Wood 54 → 51, Osborne 1 38 → 30 (Gulf 23 → 25,
    Penalty I (n = 10) 37 → 39). Biggs EXP6's count is chaotic: from the start scaled by
    1 ± 10⁻¹⁴…10⁻¹⁰ it takes 66–78 (trust-exact 39 from each). It is sensitive to the path: the
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
        self.shortened = False  # the line search has shortened a step: Δ bounds every step

    def direction(self, g: Tensor, at: Evaluation, gg: float) -> tuple[Tensor, float | None]:
        d, shifted = self._solve(g, at)
        self.capped = False
        if not shifted and not self.shortened:  # the model's minimizer, uncapped
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
                self.shortened = self.shortened or info.t < 1

    def state_dict(self) -> dict[str, Any]:
        return {"radius": self.radius, "shortened": self.shortened}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.radius = float(state.get("radius", self.RADIUS))
        self.shortened = bool(state.get("shortened", False))

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

    CG stops when ‖Hδ + g‖₁ ≤ η‖g‖₁, after `max_cg` products, at the radius Δ (below), or on
    negative curvature pᵀHp ≤ 0. At the first product that gives the steepest-descent step
    scaled by the curvature, (gᵀg/|gᵀHg|)·(−g); later, the last iterate z plus the direction
    of negative curvature, signed to descend and of length |λ| = |pᵀHp|/‖p‖² (as Royer &
    Wright's Newton-CG, 2018). scipy returns z alone, and near a saddle its steps creep: on Wood's
    function its Newton-CG stalls at the saddle (f ≈ 7.88), where this one goes on to the
    minimum in ~130 evaluations. H is never formed; each product reuses the gradient's graph.

    The forcing term η is Eisenstat & Walker's choice 2 (1996), in scipy's ℓ₁ norms:

    .. math:: η_k = \min\bigl(η_{max},\ \max(γ(‖g_k‖/‖g_{k−1}‖)^α,\ γη_{k−1}^α)\bigr),
              \quad γ = 1,\ α = 1.5,\ η_{max} = 0.5,

    the safeguard γη_{k−1}^α applying only while it exceeds 0.1, and η₀ = min(0.5, √‖g₀‖₁)
    (scipy's and torchmin's rule at every step). While the gradient falls slowly — far from a
    minimizer, where the quadratic model is poor — η stays large and CG stops early; once ‖g‖
    falls fast η → 0 and the steps approach Newton steps (convergence of order α).

    The step is bounded by a radius Δ, set from the line search as :class:`Newton`'s: Δ₀ = ∞;
    a step it shortens sets Δ to the length taken, a bounded step it takes whole doubles Δ.
    CG stops where its iterate would leave the ball (Steihaug 1983): z + τp with τ > 0 and
    ‖z + τp‖ = Δ, which still decreases the model (it is convex along p up to CG's own step);
    a negative-curvature step longer than Δ is shortened to Δ. On a network CG's iterate often
    runs far along a direction of tiny curvature (‖δ‖ ~ 10³ where the steps taken are ~ 0.3),
    and the line search then spent up to 8 evaluations cutting t = 1 down by tenfolds.

    Measured (minimize(method="newton-cg"), tol 1e-5; evaluations/Hv products; before: η =
    min(0.5, √‖g‖₁), no bound): MGH battery (43 problems) 2687/4747 → 2160/4132, all converged
    (η alone: 2304/4120); the bench's 64-32-10 tanh MLP 21/87 → 16/53, its logistic
    regression 9/49 → 8/61 (SciPy 11/94); the same MLP on raw digits pixels (1438 rows) from
    w₀ = 0.1·N(0, 1), seeds 0/1/2, Hv 1371/1010/1501 → 529/466/759 (torchmin 1124/970/1171,
    counted to ‖∇f‖∞ ≤ 1e-5; η alone 758/651/760), evaluations 128/118/152 → 134/126/170;
    16-unit tanh/softplus/sigmoid MLPs (test_minimize), evaluations per iteration
    1.47/1.75/1.50 → 1.27/1.30/1.27 (η alone 1.78/2.35/1.82), Hv 1384/727/1006 → 320/327/485.
    Tried: (γ, α) = (0.9, 2) MGH 2327/4242, logreg 8/91; (0.9, 1.618) 2280/4122, 8/73;
    (0.9, 1.5) 2297/4123, 8/64; (1, 1.25) 2711/4860; the larger of this and √‖g‖₁ 2710/4763;
    the bound with η = min(0.5, √‖g‖₁) 2296/4309, raw Hv 661/583/717; Δ ×3, ×4, ×10 on a
    whole bounded step: MGH 2169, 2168, 2183 evaluations.
    """

    name = "newton-cg"
    needs_curvature = True
    # a truncated or curvature-bent step is often far too long: always trying t = 1 first cost
    # 2.5 evaluations per iteration (median, 24 small MLPs; tools/newton_cg_mlps.py), scipy 1.5
    # (it repeats the last decrease of f, at most t = 1). t = 1 while it is taken, else scipy's
    # step: 1.5, and evaluations 1.31 → 0.90 × scipy's (median), Hv products unchanged (0.6 ×)
    first_trial = "unit-while-taken"
    GAMMA, ALPHA, ETA_MAX = 1.0, 1.5, 0.5  # Eisenstat–Walker choice 2

    def __init__(self, max_cg: int = 0) -> None:
        self.max_cg = max_cg  # 0: 20·n, as scipy
        self.reset()

    def reset(self) -> None:
        self.g1_prev: float | None = None  # ‖g‖₁ and η of the last direction
        self.eta_prev = 0.0
        self.radius = math.inf  # Δ
        self.bounded = False  # the last direction was cut to length Δ

    def direction(self, g: Tensor, at: Evaluation, gg: float) -> tuple[Tensor, float | None]:
        return self._solve(g, at, gg), None

    def step_taken(self, d: Tensor, g_old: Tensor, g_new: Tensor, info: StepInfo) -> None:
        if info.unit:
            if self.bounded:
                self.radius *= 2
        elif info.t > 0:
            length = info.t * float(torch.linalg.vector_norm(d))
            if math.isfinite(length) and length > 0:
                self.radius = length

    def _forcing(self, g1: float) -> float:
        """η for a gradient of ℓ₁ norm g1 (see the class docstring); remembers g1 and η."""
        prev = self.g1_prev
        if prev is None or not prev > 0 or not math.isfinite(g1):
            eta = min(self.ETA_MAX, math.sqrt(g1)) if math.isfinite(g1) else self.ETA_MAX
        else:
            eta = self.GAMMA * (g1 / prev) ** self.ALPHA
            safeguard = self.GAMMA * self.eta_prev**self.ALPHA
            if safeguard > 0.1:
                eta = max(eta, safeguard)
            eta = min(self.ETA_MAX, eta)
        self.g1_prev, self.eta_prev = g1, eta
        return eta

    def state_dict(self) -> dict[str, Any]:
        return {"g1_prev": self.g1_prev, "eta_prev": self.eta_prev, "radius": self.radius}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        g1_prev = state.get("g1_prev")
        self.g1_prev = None if g1_prev is None else float(g1_prev)
        self.eta_prev = float(state.get("eta_prev", 0.0))
        self.radius = float(state.get("radius", math.inf))

    def _solve(self, g: Tensor, at: Evaluation, rr: float) -> Tensor:
        assert at.hvp is not None
        g1 = float(g.abs().sum())
        tolerance = self._forcing(g1) * g1
        radius, self.bounded = self.radius, False
        bounded = math.isfinite(radius)
        z = torch.zeros_like(g)
        r, p = g.clone(), -g
        r1, zz = g1, 0.0  # ‖r‖₁, ‖z‖²
        for j in range(self.max_cg or 20 * g.numel()):
            if r1 <= tolerance:
                return z
            Hp = at.hvp(p)
            if bounded:  # pᵀHp with pᵀp and zᵀp in the same read
                pHp, pp, zp = torch.stack([p @ Hp, p @ p, z @ p]).tolist()
            else:
                pHp = float(p @ Hp)
            if not math.isfinite(pHp) or pHp <= 0:
                if not (math.isfinite(pHp) and pHp < 0):  # zero or non-finite curvature
                    return -g if j == 0 else z
                d = (rr / -pHp) * -g if j == 0 else z + self._negative_curvature_step(g, p, pHp)
                return self._within(d, radius) if bounded else d
            alpha = rr / pHp
            if bounded and zz + alpha * (2 * zp + alpha * pp) >= radius * radius:
                # Steihaug: on to the boundary along p, τ > 0 with ‖z + τp‖ = Δ
                root = math.sqrt(max(zp * zp + pp * (radius * radius - zz), 0.0))
                self.bounded = True
                return z.add_(p, alpha=(root - zp) / pp)
            z.add_(p, alpha=alpha)
            r.add_(Hp, alpha=alpha)
            if bounded:
                zz += alpha * (2 * zp + alpha * pp)
            rr_new, r1 = torch.stack([r @ r, r.abs().sum()]).tolist()
            p = -r + (rr_new / rr) * p
            rr = rr_new
        return z

    def _within(self, d: Tensor, radius: float) -> Tensor:
        """d, shortened to length Δ when longer."""
        length = float(torch.linalg.vector_norm(d))
        if length <= radius:
            return d
        self.bounded = True
        return d * (radius / length)

    @staticmethod
    def _negative_curvature_step(g: Tensor, p: Tensor, pHp: float) -> Tensor:
        """p scaled to length |λ| = |pᵀHp|/‖p‖² and signed so that gᵀ(step) ≤ 0."""
        pp, gp = torch.stack([p @ p, g @ p]).tolist()
        return p * (-math.copysign(1.0, gp) * (-pHp / pp) / math.sqrt(pp))
