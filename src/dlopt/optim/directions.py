"""The math of each method, once: a search direction from the current iterate, and what each
method remembers from a step s = x_{k+1} − x_k with gradient change y = g_{k+1} − g_k.

Both front doors — :func:`dlopt.optim.minimize` and the ``torch.optim`` classes — drive these
through :class:`dlopt.optim.solver.Solver`. No method reads a tensor back to the host: the
numbers a decision needs (sᵀy, gᵀd, ‖g‖²) arrive as :class:`StepInfo`, computed from the
values every evaluation reports anyway. That keeps the methods fast on a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dlopt.optim.objective import Evaluation


@dataclass(frozen=True)
class StepInfo:
    """Host numbers of an accepted step x → x + t·d, known without a device read."""

    t: float
    gtd_old: float  # ∇f(x)ᵀd
    gtd_new: float  # ∇f(x + td)ᵀd
    gg_old: float  # ‖∇f(x)‖²
    gg_new: float  # ‖∇f(x + td)‖²
    g_dot_old: float  # ∇f(x + td)ᵀ∇f(x)
    eps: float  # machine epsilon of the dtype

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
    """A descent method: ``direction`` at an iterate, ``update`` after a step."""

    name = "method"
    c2 = 0.9  # strong-Wolfe curvature constant
    needs_curvature = False  # evaluate with create_graph (Hv products / Hessians)
    unit_step = True  # try t = 1 after the first iteration (Newton-like scaling)
    scaled = False  # the direction has the right length from the start (Newton): t = 1 always

    def reset(self) -> None:
        """Forget what was learned (after a failed line search or a bad direction)."""

    def direction(self, g: Tensor, at: Evaluation, gg: float) -> tuple[Tensor, float | None]:
        """(d, gᵀd) — gᵀd when known on the host without a device read, else None."""
        return -g, -gg

    def update(self, s: Tensor, y: Tensor, d: Tensor, info: StepInfo) -> None:
        """Learn from the accepted step (d: the direction taken)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class GradientDescent(Method):
    """d = −∇f: the first-order baseline the chapter compares against."""

    name = "gd"
    unit_step = False


class NonlinearCG(Method):
    r"""Nonlinear conjugate gradient, d_k = −g_k + β_k d_{k−1} (Nocedal & Wright §5.2).

    β^FR = gᵀg / g₋ᵀg₋;  β^PR = gᵀ(g − g₋) / g₋ᵀg₋;  β^PR+ = max(β^PR, 0);
    β^HS = gᵀ(g − g₋) / d₋ᵀ(g − g₋). Restarts (d = −g) every n iterations and whenever
    −gᵀd < 0.01‖g‖² (scipy's sufficient-descent test); c₂ = 0.1 for near-exact line searches.
    β and gᵀd are computed on the host from the step's numbers: CG reads nothing back.
    """

    c2 = 0.1
    unit_step = False
    BETAS = ("fr", "pr", "pr+", "hs")

    def __init__(self, beta: str = "pr+", restart: int = 0) -> None:
        self.beta = beta
        self.restart = restart  # 0: every n iterations
        self.name = f"cg-{beta}"
        self.reset()

    def reset(self) -> None:
        self.d_prev: Tensor | None = None
        self.info: StepInfo | None = None
        self.since_restart = 0

    def direction(self, g: Tensor, at: Evaluation, gg: float) -> tuple[Tensor, float | None]:
        period = self.restart or g.numel()
        info = self.info
        if self.d_prev is None or info is None or self.since_restart >= period:
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
        return -g + beta * self.d_prev, -gg + beta * info.gtd_new

    def update(self, s: Tensor, y: Tensor, d: Tensor, info: StepInfo) -> None:
        self.d_prev, self.info = d, info
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
        self.info = None if state["info"] is None else StepInfo(*map(float, state["info"]))
        self.since_restart = int(state["since_restart"])


class BFGS(Method):
    r"""BFGS with a dense inverse-Hessian estimate H (Nocedal & Wright Alg. 6.1):

    H ← (I − ρsyᵀ)H(I − ρysᵀ) + ρssᵀ, ρ = 1/yᵀs, applied as the O(n²) rank-2 update
    H ← H + ((sᵀy + yᵀHy)/(sᵀy)²)·ssᵀ − (Hy·sᵀ + s·(Hy)ᵀ)/sᵀy. Before the first update
    H₀ = (sᵀy/yᵀy)·I (N&W eq. 6.20), which scipy's BFGS lacks. Memory n² numbers.
    """

    name = "bfgs"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.H: Tensor | None = None

    def direction(self, g: Tensor, at: Evaluation, gg: float) -> tuple[Tensor, float | None]:
        return (-g, -gg) if self.H is None else (-(self.H @ g), None)

    def update(self, s: Tensor, y: Tensor, d: Tensor, info: StepInfo) -> None:
        if not info.curvature_ok:
            return  # skip the pair: H stays positive definite
        sy = s @ y  # device scalars throughout: no host read
        if self.H is None:
            self.H = torch.eye(s.numel(), dtype=s.dtype, device=s.device) * (sy / (y @ y))
        Hy = self.H @ y
        coef = (sy + y @ Hy) / (sy * sy)
        # the three rank-1 terms as one rank-3 GEMM: [s Hy s]·[c·s, −s/sy, −Hy/sy]ᵀ
        left = torch.stack([s, Hy, s], dim=1)  # (n, 3)
        right = torch.stack([s * coef, s * (-1 / sy), Hy * (-1 / sy)])  # (3, n)
        self.H.addmm_(left, right)

    def state_dict(self) -> dict[str, Any]:
        return {"H": self.H}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.H = state["H"]


class LBFGS(Method):
    r"""L-BFGS in the compact representation (Byrd, Nocedal & Schnabel 1994; N&W eq. 7.24):

    H g = γg + [S  γY] M [Sᵀg; γYᵀg],  M = [[R⁻ᵀ(D + γYᵀY)R⁻¹, −R⁻ᵀ], [−R⁻¹, 0]],

    with S, Y the last m pairs, R the upper triangle of SᵀY in time order, D its diagonal and
    γ = sᵀy/yᵀy of the newest pair. Equal to the two-loop recursion, but ~20 tensor operations
    whatever m is and no host read. The pairs live in ring buffers S, Y (m × n); the small
    products are kept in time order (unused slots first, as rows of the identity), so each
    direction costs two m-vector matrix products, two m×m triangular solves and two products
    back — the time order is a rotation of the ring, so it costs one roll per vector.
    """

    name = "lbfgs"

    def __init__(self, history_size: int = 10) -> None:
        self.m = history_size
        self.reset()

    def reset(self) -> None:
        self.S: Tensor | None = None
        self.Y: Tensor | None = None
        self.SY: Tensor | None = None  # SY[i, j] = s_i·y_j, ring slots
        self.YY: Tensor | None = None
        self.R: Tensor | None = None  # upper triangle of SᵀY, time order (identity if unused)
        self.D: Tensor | None = None  # its diagonal, time order
        self.YYt: Tensor | None = None  # YᵀY, time order
        self.shift = 0  # the roll taking ring slots to time order
        self.gamma: Tensor | None = None  # sᵀy/yᵀy of the newest pair, on the device
        self.count = 0

    def update(self, s: Tensor, y: Tensor, d: Tensor, info: StepInfo) -> None:
        if not info.curvature_ok:
            return
        m = self.m
        if self.S is None:
            n = s.numel()
            self.S, self.Y = s.new_zeros(m, n), s.new_zeros(m, n)
            self.SY, self.YY = s.new_zeros(m, m), s.new_zeros(m, m)
        assert self.Y is not None and self.SY is not None and self.YY is not None
        slot = self.count % m
        self.S[slot], self.Y[slot] = s, y
        self.SY[:, slot] = self.S @ y
        self.SY[slot, :] = self.Y @ s
        column = self.Y @ y
        self.YY[:, slot], self.YY[slot, :] = column, column
        self.gamma = self.SY[slot, slot] / column[slot]
        self.count += 1
        # time position p holds ring slot (count + p) mod m: a rotation by −(count mod m)
        shift = -(self.count % m)
        SYt = torch.roll(self.SY, (shift, shift), (0, 1))
        self.YYt = torch.roll(self.YY, (shift, shift), (0, 1))
        unused = m - min(self.count, m)  # the first `unused` positions hold no pair yet
        self.R = SYt.triu()
        self.D = SYt.diagonal()
        if unused:
            self.D = self.D.clone()
            self.R[:unused] = 0
            self.R[:, :unused] = 0
            self.R[range(unused), range(unused)] = 1.0
            self.D[:unused] = 0
            self.YYt[:unused] = 0
            self.YYt[:, :unused] = 0
        self.shift = shift

    def direction(self, g: Tensor, at: Evaluation, gg: float) -> tuple[Tensor, float | None]:
        if self.S is None or self.gamma is None or self.R is None:
            return -g, -gg
        assert self.Y is not None and self.D is not None and self.YYt is not None
        gamma, shift = self.gamma, self.shift
        a = torch.roll(self.S @ g, shift)[:, None]  # Sᵀg, time order (zero for unused slots)
        b = gamma * torch.roll(self.Y @ g, shift)[:, None]  # γYᵀg
        u = torch.linalg.solve_triangular(self.R, a, upper=True)  # R⁻¹a
        rhs = self.D[:, None] * u + gamma * (self.YYt @ u) - b
        top = torch.linalg.solve_triangular(self.R.T, rhs, upper=False)  # R⁻ᵀ((D+γYᵀY)u − b)
        c_s = torch.roll(top[:, 0], -shift)  # back to ring slots
        c_y = torch.roll(u[:, 0], -shift) * gamma
        return -(gamma * g + c_s @ self.S - c_y @ self.Y), None

    def state_dict(self) -> dict[str, Any]:
        return {
            "S": self.S,
            "Y": self.Y,
            "SY": self.SY,
            "YY": self.YY,
            "R": self.R,
            "D": self.D,
            "YYt": self.YYt,
            "shift": self.shift,
            "gamma": self.gamma,
            "count": self.count,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.S, self.Y, self.SY, self.YY = state["S"], state["Y"], state["SY"], state["YY"]
        self.R, self.D, self.YYt = state["R"], state["D"], state["YYt"]
        self.shift, self.gamma, self.count = (
            int(state["shift"]),
            state["gamma"],
            int(state["count"]),
        )
