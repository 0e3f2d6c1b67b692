"""The math of each method, once: a search direction from the current iterate, and what each
method remembers from a step s = x_{k+1} − x_k with gradient change y = g_{k+1} − g_k.

Both front doors — :func:`dlopt.optim.minimize` and the ``torch.optim`` classes — drive these
through :class:`dlopt.optim.solver.Solver`. No method reads a tensor back to the host: the
numbers a decision needs (sᵀy, gᵀd, ‖g‖²) arrive as :class:`StepInfo`, computed from the
values every evaluation reports anyway. That keeps the methods fast on a GPU.

Here: the :class:`Method` contract, gradient descent, nonlinear CG and dense BFGS; L-BFGS is in
:mod:`dlopt.optim.lbfgs`, Newton and Newton-CG in :mod:`dlopt.optim.newton`, and where the
host algebra runs (numpy or torch) in :mod:`dlopt.optim.placement`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dlopt.optim.objective import Evaluation


@dataclass(slots=True)
class StepInfo:
    """Host numbers of an accepted step x → x + t·d, known without a device read."""

    t: float
    gtd_old: float  # ∇f(x)ᵀd
    gtd_new: float  # ∇f(x + td)ᵀd
    gg_old: float  # ‖∇f(x)‖²
    gg_new: float  # ‖∇f(x + td)‖²
    g_dot_old: float  # ∇f(x + td)ᵀ∇f(x)
    eps: float  # machine epsilon of the dtype
    unit: bool = False  # the line search accepted its unit trial step t = lr
    # (d, ∇f(x), ∇f(x + td)) seen by numpy, on the solver's host path: views made once
    host: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def sy(self) -> float:
        """sᵀy = t·(∇f(x+td) − ∇f(x))ᵀd, exactly."""
        return self.t * (self.gtd_new - self.gtd_old)

    @property
    def curvature_ok(self) -> bool:
        """L-BFGS-B's scale-free test yᵀs > ε·(−gᵀs) (OPTIM-NOTES #6)."""
        sy = self.sy
        return math.isfinite(sy) and sy > self.eps * (-self.t * self.gtd_old)


class Method:
    """A descent method: ``direction`` at an iterate, ``step_taken`` after a step."""

    name = "method"
    c2 = 0.9  # strong-Wolfe curvature constant
    needs_curvature = False  # evaluate with create_graph (Hv products / Hessians)
    # the line search's first trial after the first iteration (Solver._initial_step): "unit"
    # t = 1 (quasi-Newton scaling); "slope" the step repeating the last step's first-order
    # change; "unit-while-taken" t = 1 while the last step took it, else the step repeating
    # the last decrease of f
    first_trial = "unit"
    scaled = False  # the direction has the right length from the start (Newton): t = 1 always
    uses_g_dot_old = False  # reads StepInfo.g_dot_old (each evaluation then computes it)
    # on the CPU, compute an evaluation's numbers in numpy, as the method's own host algebra
    # does: one library's code in the cache instead of two (measured A/B: L-BFGS −30 % overhead
    # per iteration with it; CG, whose direction is one torch expression, 6–18 % more)
    numpy_on_host = False

    def reset(self) -> None:
        """Forget what was learned (after a failed line search or a bad direction)."""

    def direction(self, g: Tensor, at: Evaluation, gg: float) -> tuple[Tensor, float | None]:
        """(d, gᵀd) — gᵀd when known on the host without a device read, else None."""
        return -g, -gg

    def step_taken(self, d: Tensor, g_old: Tensor, g_new: Tensor, info: StepInfo) -> None:
        """Learn from an accepted step x → x + t·d (t = info.t). Methods that learn from the
        pair (s, y) = (t·d, g_new − g_old) form it here; the others skip it."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class GradientDescent(Method):
    """d = −∇f: the first-order baseline the chapter compares against."""

    name = "gd"
    first_trial = "slope"


class NonlinearCG(Method):
    r"""Nonlinear conjugate gradient, d_k = −g_k + β_k d_{k−1} (Nocedal & Wright §5.2).

    β^FR = gᵀg / g₋ᵀg₋;  β^PR = gᵀ(g − g₋) / g₋ᵀg₋;  β^PR+ = max(β^PR, 0);
    β^HS = gᵀ(g − g₋) / d₋ᵀ(g − g₋). Restarts (d = −g) by Powell's test (1977; N&W eq. 5.52):
    when |gᵀg₋| ≥ ν‖g‖² the successive gradients are far from orthogonal, conjugacy is lost;
    and whenever −gᵀd < 0.01‖g‖² (scipy's sufficient-descent test, in the solver). On a
    quadratic with exact line searches gᵀg₋ = 0, so CG runs unrestarted and is linear CG,
    converging in at most n steps in exact arithmetic. A fixed every-n restart — dlopt's
    earlier rule — threw that away: on MGH's Box 3-D (n = 3) it took 660 evaluations against
    scipy's 36, and on an SPD quadratic with κ ≈ 600 (n = 20) 39–122 iterations where linear
    CG needs 23. `restart` > 0 adds a restart every `restart` iterations. ν = 0.25 (Powell's
    0.2 and N&W's 0.1 restart more often) and c₂ = 0.25: over the MGH battery's 43 problems
    (tools/mgh_table.py) 4981 evaluations with median ratio 0.87 to scipy's CG, against 6204
    and 0.96 with ν = 0.2, c₂ = 0.1; no problem missed; ν = 0.2 or 0.3, c₂ = 0.1 … 0.5 all did
    worse. β and gᵀd are computed on the host from the step's numbers: CG reads nothing back.
    """

    c2 = 0.25
    first_trial = "slope"
    uses_g_dot_old = True
    BETAS = ("fr", "pr", "pr+", "hs")
    POWELL = 0.25  # ν: restart when |gᵀg₋| ≥ ν·‖g‖²

    def __init__(self, beta: str = "pr+", restart: int = 0) -> None:
        self.beta = beta
        self.restart = restart  # 0: Powell's test only
        self.name = f"cg-{beta}"
        self.reset()

    def reset(self) -> None:
        self.d_prev: Tensor | None = None
        self.info: StepInfo | None = None
        self.since_restart = 0

    def direction(self, g: Tensor, at: Evaluation, gg: float) -> tuple[Tensor, float | None]:
        info = self.info
        if (
            self.d_prev is None
            or info is None
            or (self.restart and self.since_restart >= self.restart)
            or not abs(info.g_dot_old) < self.POWELL * gg  # also NaN
        ):
            self.since_restart = 0
            return -g, -gg
        g_diff = gg - info.g_dot_old  # gᵀ(g − g₋)
        with_prev = {
            "fr": (gg, info.gg_old),
            "pr": (g_diff, info.gg_old),
            "pr+": (g_diff, info.gg_old),
            "hs": (g_diff, info.gtd_new - info.gtd_old),
        }[self.beta]
        try:
            beta = with_prev[0] / with_prev[1]
        except ZeroDivisionError:
            beta = 0.0
        if self.beta == "pr+":
            beta = max(beta, 0.0)
        if not math.isfinite(beta):
            beta = 0.0
        # two kernels (−g, then one fused add), not three: each is a launch on a GPU
        return torch.add(-g, self.d_prev, alpha=beta), -gg + beta * info.gtd_new

    def step_taken(self, d: Tensor, g_old: Tensor, g_new: Tensor, info: StepInfo) -> None:
        self.d_prev, self.info = d, info  # β and the slope need no pair
        self.since_restart += 1

    def state_dict(self) -> dict[str, Any]:
        info = (
            None
            if self.info is None
            else [
                self.info.t,
                self.info.gtd_old,
                self.info.gtd_new,
                self.info.gg_old,
                self.info.gg_new,
                self.info.g_dot_old,
                self.info.eps,
            ]
        )
        return {"d_prev": self.d_prev, "info": info, "since_restart": self.since_restart}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.d_prev = state["d_prev"]
        info = state["info"]
        if info is None:
            self.info = None
        else:
            t, gtd_old, gtd_new, gg_old, gg_new, g_dot_old, eps = map(float, info[:7])
            self.info = StepInfo(t, gtd_old, gtd_new, gg_old, gg_new, g_dot_old, eps)
        self.since_restart = int(state["since_restart"])


class BFGS(Method):
    r"""BFGS with a dense inverse-Hessian estimate H (Nocedal & Wright Alg. 6.1):

    H ← (I − ρsyᵀ)H(I − ρysᵀ) + ρssᵀ, ρ = 1/yᵀs, applied as the O(n²) rank-2 update
    H ← H + ((sᵀy + yᵀHy)/(sᵀy)²)·ssᵀ − (Hy·sᵀ + s·(Hy)ᵀ)/sᵀy. Before the first update
    H₀ = (sᵀy/yᵀy)·I (N&W eq. 6.20), which scipy's BFGS lacks. Memory n² numbers.

    That H₀ is measured where the run starts. When the curvature later falls by orders of
    magnitude (logistic regression as the fit sharpens), H stays far too small in the
    directions not yet stepped along, and BFGS — quick to correct an H that is too large,
    slow to correct one too small (N&W §6.1) — crawls: 274 evaluations on L2 logistic
    regression (breast cancer, 31 parameters), scipy's 95 with H₀ = I. So after ``STREAK``
    successive *short unit steps* — t = lr accepted with the slope along d still below
    ``SHORT``·its start (φ'(1) < 0.2·φ'(0): f was still falling fast, H too small along d)
    — H is first scaled by τ = sᵀy/yᵀHy when τ > 1 (the Oren–Luenberger factor, upwards only).
    Measured (evaluations; logistic, MGH Wood n = 4 / extended Wood n = 100 / extended Powell
    n = 100, Rosenbrock n = 1000): no rescaling 274, 42/43/42, 45; H₀ = I 107, –, 2871 and
    unconverged; τ at every step 88, Rosenbrock 155; at every short unit step 88, 120/329/61,
    61; after two in a row (this) 94, 102/163/56, 47; scipy 95, 104/761/256, > 1400 iterations.
    """

    name = "bfgs"
    SHORT = 0.2
    STREAK = 2

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.H: Tensor | None = None
        self.streak = 0

    def direction(self, g: Tensor, at: Evaluation, gg: float) -> tuple[Tensor, float | None]:
        return (-g, -gg) if self.H is None else (-(self.H @ g), None)

    def step_taken(self, d: Tensor, g_old: Tensor, g_new: Tensor, info: StepInfo) -> None:
        if not info.curvature_ok:
            return  # skip the pair: H stays positive definite
        s, y = info.t * d, g_new - g_old
        sy = s @ y  # device scalars throughout: no host read
        if self.H is None:
            self.H = torch.eye(s.numel(), dtype=s.dtype, device=s.device) * (sy / (y @ y))
        Hy = self.H @ y
        yHy = y @ Hy
        short = info.unit and info.gtd_new < self.SHORT * info.gtd_old
        self.streak = self.streak + 1 if short else 0
        if self.streak >= self.STREAK:  # H too small along d?
            tau = torch.clamp(sy / yHy, min=1.0)  # on the device: no read
            self.H.mul_(tau)
            Hy, yHy = Hy * tau, yHy * tau
        coef = (sy + yHy) / (sy * sy)
        # the three rank-1 terms as one rank-3 GEMM: [s Hy s]·[c·s, −s/sy, −Hy/sy]ᵀ
        left = torch.stack([s, Hy, s], dim=1)  # (n, 3)
        right = torch.stack([s * coef, s * (-1 / sy), Hy * (-1 / sy)])  # (3, n)
        self.H.addmm_(left, right)

    def state_dict(self) -> dict[str, Any]:
        return {"H": self.H, "streak": self.streak}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.H, self.streak = state["H"], int(state.get("streak", 0))
