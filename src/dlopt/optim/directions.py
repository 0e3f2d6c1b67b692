"""The math of each method, once: a search direction from the current iterate, and what each
method remembers from a step s = x_{k+1} − x_k with gradient change y = g_{k+1} − g_k.

Both front doors — :func:`dlopt.optim.minimize` and the ``torch.optim`` classes — drive these
through :class:`dlopt.optim.solver.Solver`. Nothing here reads a tensor back to the host except
where a decision needs a number (noted); that keeps the methods fast on a GPU.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from dlopt.optim.objective import Evaluation

CURVATURE_EPS = 1e-10  # accept a pair only when yᵀs > ε·‖s‖·‖y‖ (scale-free; OPTIM-NOTES #6)


class Method:
    """A descent method: ``direction`` at an iterate, ``update`` after a step."""

    name = "method"
    c2 = 0.9  # strong-Wolfe curvature constant
    needs_curvature = False  # evaluate with create_graph (Hv products / Hessians)
    unit_step = True  # try t = 1 after the first iteration (Newton-like scaling)

    def reset(self) -> None:
        """Forget what was learned (after a failed line search or a bad direction)."""

    def direction(self, g: Tensor, at: Evaluation) -> Tensor:
        return -g

    def update(self, s: Tensor, y: Tensor, d: Tensor, g_old: Tensor) -> None:
        """Learn from the accepted step (d: the direction taken, g_old: gradient before it)."""

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
        self.g_prev: Tensor | None = None
        self.since_restart = 0

    def direction(self, g: Tensor, at: Evaluation) -> Tensor:
        period = self.restart or g.numel()
        if self.d_prev is None or self.g_prev is None or self.since_restart >= period:
            self.since_restart = 0
            return -g
        gp, dp = self.g_prev, self.d_prev
        if self.beta == "fr":
            beta = (g @ g) / (gp @ gp)
        elif self.beta == "hs":
            diff = g - gp
            beta = (g @ diff) / (dp @ diff)
        else:
            beta = (g @ (g - gp)) / (gp @ gp)
            if self.beta == "pr+":
                beta = beta.clamp_min(0)
        beta = torch.nan_to_num(beta, nan=0.0, posinf=0.0, neginf=0.0)  # 0/0 → restart
        return -g + beta * dp

    def update(self, s: Tensor, y: Tensor, d: Tensor, g_old: Tensor) -> None:
        self.d_prev, self.g_prev = d, g_old
        self.since_restart += 1

    def state_dict(self) -> dict[str, Any]:
        return {"d_prev": self.d_prev, "g_prev": self.g_prev, "since_restart": self.since_restart}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.d_prev, self.g_prev = state["d_prev"], state["g_prev"]
        self.since_restart = int(state["since_restart"])


def _curvature_ok(s: Tensor, y: Tensor) -> tuple[bool, float, float]:
    """(accept, sᵀy, yᵀy): one host read for the three dot products."""
    sy, yy, ss = torch.stack([s @ y, y @ y, s @ s]).tolist()
    ok = math.isfinite(sy) and math.isfinite(yy) and sy > CURVATURE_EPS * math.sqrt(max(ss * yy, 0))
    return ok, sy, yy


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

    def direction(self, g: Tensor, at: Evaluation) -> Tensor:
        return -g if self.H is None else -(self.H @ g)

    def update(self, s: Tensor, y: Tensor, d: Tensor, g_old: Tensor) -> None:
        if self.H is None:
            ok, sy, yy = _curvature_ok(s, y)
            if not ok:
                return
            self.H = torch.eye(s.numel(), dtype=s.dtype, device=s.device) * (sy / yy)
        Hy = self.H @ y
        sy, yy, ss, yHy = torch.stack([s @ y, y @ y, s @ s, y @ Hy]).tolist()
        if not (math.isfinite(yHy) and sy > CURVATURE_EPS * math.sqrt(max(ss * yy, 0))):
            return  # skip the pair: H stays positive definite
        # the three rank-1 terms as one rank-3 GEMM: [s Hy s]·[c·s, −s/sy, −Hy/sy]ᵀ
        left = torch.stack([s, Hy, s], dim=1)  # (n, 3)
        right = torch.stack([s * ((sy + yHy) / (sy * sy)), s * (-1.0 / sy), Hy * (-1.0 / sy)])
        self.H.addmm_(left, right)

    def state_dict(self) -> dict[str, Any]:
        return {"H": self.H}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.H = state["H"]


class LBFGS(Method):
    r"""L-BFGS in the compact representation (Byrd, Nocedal & Schnabel 1994; N&W eq. 7.24):

    H g = γg + [S  γY] M [Sᵀg; γYᵀg],  M = [[R⁻ᵀ(D + γYᵀY)R⁻¹, −R⁻ᵀ], [−R⁻¹, 0]],

    with S, Y the last m pairs (columns in time order), R the upper triangle of SᵀY, D its
    diagonal and γ = sᵀy/yᵀy of the newest pair. Equal to the two-loop recursion, but ~10
    tensor operations whatever m is and no host read: the ring buffers S, Y (m × n) and the
    small products SᵀY, YᵀY are updated in place.
    """

    name = "lbfgs"

    def __init__(self, history_size: int = 10) -> None:
        self.m = history_size
        self.reset()

    def reset(self) -> None:
        self.S: Tensor | None = None
        self.Y: Tensor | None = None
        self.SY: Tensor | None = None  # SY[i, j] = s_i·y_j (ring slots)
        self.YY: Tensor | None = None
        self.order: list[int] = []  # ring slots, oldest first
        self.gamma = 1.0
        self._index: Tensor | None = None

    def update(self, s: Tensor, y: Tensor, d: Tensor, g_old: Tensor) -> None:
        ok, sy, yy = _curvature_ok(s, y)
        if not ok:
            return
        if self.S is None:
            n, m = s.numel(), self.m
            self.S = s.new_zeros(m, n)
            self.Y = s.new_zeros(m, n)
            self.SY = s.new_zeros(m, m)
            self.YY = s.new_zeros(m, m)
        assert self.Y is not None and self.SY is not None and self.YY is not None
        slot = self.order.pop(0) if len(self.order) == self.m else len(self.order)
        self.order.append(slot)
        self.S[slot], self.Y[slot] = s, y
        self.SY[:, slot] = self.S @ y
        self.SY[slot, :] = self.Y @ s
        self.YY[:, slot] = self.Y @ y
        self.YY[slot, :] = self.YY[:, slot]
        self.gamma = sy / yy
        self._index = torch.tensor(self.order, device=s.device)

    def direction(self, g: Tensor, at: Evaluation) -> Tensor:
        if self.S is None or self._index is None:
            return -g
        assert self.Y is not None and self.SY is not None and self.YY is not None
        idx, gamma = self._index, self.gamma
        a = (self.S @ g)[idx]  # Sᵀg, oldest first
        b = gamma * (self.Y @ g)[idx]  # γYᵀg
        SY = self.SY[idx][:, idx]
        R = SY.triu()
        u = torch.linalg.solve_triangular(R, a[:, None], upper=True)  # R⁻¹a
        rhs = (torch.diag(SY)[:, None] * u + gamma * (self.YY[idx][:, idx] @ u)) - b[:, None]
        top = torch.linalg.solve_triangular(R.T, rhs, upper=False)[:, 0]  # R⁻ᵀ((D+γYᵀY)u − b)
        c_s = g.new_zeros(self.m).index_copy_(0, idx, top)
        c_y = g.new_zeros(self.m).index_copy_(0, idx, -gamma * u[:, 0])
        return -(gamma * g + c_s @ self.S + c_y @ self.Y)

    def state_dict(self) -> dict[str, Any]:
        return {
            "S": self.S,
            "Y": self.Y,
            "SY": self.SY,
            "YY": self.YY,
            "order": list(self.order),
            "gamma": self.gamma,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.S, self.Y, self.SY, self.YY = state["S"], state["Y"], state["SY"], state["YY"]
        self.order, self.gamma = [int(i) for i in state["order"]], float(state["gamma"])
        self._index = (
            torch.tensor(self.order, device=self.S.device)
            if self.S is not None and self.order
            else None
        )
