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

import numpy as np
import torch
from scipy.linalg.lapack import dtrtri
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
    when |gᵀg₋| ≥ 0.2‖g‖² the successive gradients are far from orthogonal, conjugacy is lost;
    and whenever −gᵀd < 0.01‖g‖² (scipy's sufficient-descent test, in the solver). On a
    quadratic with exact line searches gᵀg₋ = 0, so CG runs unrestarted and is linear CG,
    converging in at most n steps in exact arithmetic. A fixed every-n restart — dlopt's
    earlier rule — threw that away: on MGH's Box 3-D (n = 3) it took 660 evaluations against
    scipy's 36, and on an SPD quadratic with κ ≈ 600 (n = 20) 39–122 iterations where linear
    CG needs 23. `restart` > 0 adds a restart every `restart` iterations. c₂ = 0.1 for
    near-exact line searches. β and gᵀd are computed on the host from the step's numbers:
    CG reads nothing back.
    """

    c2 = 0.1
    first_trial = "slope"
    uses_g_dot_old = True
    BETAS = ("fr", "pr", "pr+", "hs")
    POWELL = 0.2  # restart when |gᵀg₋| ≥ POWELL·‖g‖²

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


class LBFGS(Method):
    r"""L-BFGS in the compact representation (Byrd, Nocedal & Schnabel 1994; N&W eq. 7.24):

    H g = γg + [S  γY] M [Sᵀg; γYᵀg],  M = [[R⁻ᵀ(D + γYᵀY)R⁻¹, −R⁻ᵀ], [−R⁻¹, 0]],

    with S, Y the last m pairs, R_ij = s_i·y_j where pair i is not newer than pair j (upper
    triangular in time order), D its diagonal and γ = sᵀy/yᵀy of the newest pair. Equal to
    the two-loop recursion. As in L-BFGS-B, the long vectors stay on the device and the small
    algebra runs on the host in float64. The pairs live in one ring buffer W = [S; Y]
    (2m × n); the small matrices are kept in the same ring order, so nothing is ever shifted
    or permuted. R⁻¹ is updated by bordering, O(m²) per pair: dropping the oldest pair drops
    its row and column of R⁻¹ (the inverse of a trailing block of a triangular matrix is that
    block of its inverse), and the new pair k with r_i = s_i·y_k, ρ = s_k·y_k brings column
    −R⁻¹r/ρ and diagonal 1/ρ — the column dtrtri itself would compute.

    An update only writes its pair; the next direction computes W[g y_k] in one pass over W
    and reads it in one transfer — p = Wg and the new pair's products W·y_k (W·s_k is not
    needed: s_k·y_j for older pairs j lies outside R) — then forms q = Mp and
    gᵀd = −γ‖g‖² − pᵀq on the host and d = −γg − Wᵀq on the device. Per iteration: two
    passes over W, six device operations and one host read, which replaces the read of gᵀd
    the other methods need. Unused slots hold zero pairs with a unit diagonal in R; they
    contribute nothing. On the CPU the device operations are numpy calls on W's memory
    (about 30 % less overhead per iteration than torch's, measured A/B in one process).
    """

    name = "lbfgs"
    numpy_on_host = True

    def __init__(self, history_size: int = 10) -> None:
        self.m = history_size
        self._upper = np.triu(np.ones((history_size, history_size)))
        self.reset()

    def reset(self) -> None:
        m = self.m
        self.W: Tensor | None = None  # [S; Y] on the device; rows k and m + k hold pair k
        self._host_W: np.ndarray | None = None
        # column j: W·y_j = [s_i·y_j; y_i·y_j] by ring slot (unused and dropped slots zero),
        # written in one assignment. SY holds s_i·y_j for pair i not newer than j (R and D);
        # its other entries are stale and never read.
        self._WY = np.zeros((2 * m, m))
        self.SY, self.YY = self._WY[:m], self._WY[m:]
        self.R_inv = np.eye(m)  # R⁻¹ by ring slot
        self._D = self.SY.diagonal()  # a view: follows SY
        self.count = 0
        self.gamma = 1.0
        self._pending: int | None = None  # ring slot of a pair whose products are not read

    def step_taken(self, d: Tensor, g_old: Tensor, g_new: Tensor, info: StepInfo) -> None:
        if info.curvature_ok:  # s = t·d and y = g_new − g_old, written straight into W
            slot = self._next_slot(d)
            if self._host_W is not None:  # numpy on the same memory: a third of torch's cost
                s, y = self._host_rows[slot]
                np.multiply(d.numpy(), info.t, out=s)
                np.subtract(g_new.numpy(), g_old.numpy(), out=y)
                return
            _, s, y = self._views[slot]
            torch.mul(d, info.t, out=s)
            torch.sub(g_new, g_old, out=y)

    def _next_slot(self, like: Tensor) -> int:
        """The ring slot the next pair goes to, now marked pending."""
        if self.W is None:
            self._allocate(like.new_zeros(2 * self.m, like.numel()))
        self._read_pending()  # two updates with no direction between
        slot = self._pending = self.count % self.m
        self.count += 1
        return slot

    def _allocate(self, W: Tensor) -> None:
        """W and, per ring slot, views of its rows (s, y) made once: indexing a tensor from
        Python costs microseconds, and these are used every iteration."""
        self.W, m = W, self.m
        pairs = W.view(2, m, -1)
        self._views = [(pairs[:, j], W[j], W[m + j]) for j in range(m)]
        self._WT = W.T
        # on the CPU, W's memory seen by numpy: its calls cost about a microsecond where
        # torch's dispatcher costs three to five, and at small n that is the whole overhead
        self._host_W = W.numpy() if on_host(W) else None
        if self._host_W is not None:
            self._host_rows = [(self._host_W[j], self._host_W[m + j]) for j in range(m)]

    def _pair(self, slot: int) -> Tensor:
        return self._views[slot][0]  # rows s, y of a ring slot, as a 2 × n view

    def _read_pending(self) -> None:
        if self._pending is not None:
            assert self.W is not None
            _, _, y = self._views[self._pending]
            self._absorb(self._pending, _host(torch.mv(self.W, y)))

    def _absorb(self, k: int, products: np.ndarray) -> None:
        """The new pair k's products W·y_k → its column of SY and YY (its row of YY), R⁻¹
        and γ. W·s_k is not needed: s_k·y_j for older pairs j lies outside R."""
        m, YY, R_inv = self.m, self.YY, self.R_inv
        self._pending = None
        sy, yy = float(products[k]), float(products[m + k])
        # the oldest pair leaves: its row of R⁻¹ goes (its column is zero but for the
        # diagonal, in that row), and the rest of R⁻¹ stands
        R_inv[k] = 0.0
        if sy > 0 and yy > 0 and math.isfinite(products.sum()):
            self._WY[:, k] = products
            YY[k] = products[m:]
            column = R_inv.dot(products[:m])  # row k is zero: R⁻¹r over the other pairs
            column *= -1.0 / sy
            column[k] = 1.0 / sy
            R_inv[:, k] = column
            self.gamma = sy / yy
        else:  # rounding broke yᵀs > 0, or overflow: drop the pair (a zero pair is unused)
            self._pair(k).zero_()
            self._WY[:, k] = YY[k] = 0.0
            R_inv[k, k] = 1.0  # its column: the unit diagonal of an unused pair

    def direction(self, g: Tensor, at: Evaluation, gg: float) -> tuple[Tensor, float | None]:
        if self.W is None:
            return -g, -gg
        # one errstate for the whole algebra (each costs ~2 µs): an overflow in the products
        # makes _absorb drop the pair, a non-finite gᵀd makes the solver restart along −g
        with np.errstate(all="ignore"):
            return self._direction(g, gg)

    def _direction(self, g: Tensor, gg: float) -> tuple[Tensor, float]:
        slot, Wn = self._pending, self._host_W
        assert self.W is not None
        if Wn is not None:
            return self._direction_on_host(g, gg, Wn)
        if slot is None:
            p = _host(torch.mv(self.W, g))
        else:  # W[g y]: p and the new pair's products in one pass over W, one read
            both = _host(torch.mm(torch.stack([g, self._views[slot][2]]), self._WT))
            p = both[0]
            self._absorb(slot, both[1])
        minus_q, gtd = self._minus_q(p, gg)
        return torch.addmv(g, self._WT, _device(minus_q, g), beta=-self.gamma), gtd

    def _direction_on_host(self, g: Tensor, gg: float, Wn: np.ndarray) -> tuple[Tensor, float]:
        """The same on the CPU, in numpy on W's memory."""
        slot, g_host = self._pending, g.numpy()
        if slot is None:
            p = _float64(Wn.dot(g_host))
        else:
            both = _float64(np.array((g_host, self._host_rows[slot][1])).dot(Wn.T))
            p = both[0]
            self._absorb(slot, both[1])
        minus_q, gtd = self._minus_q(p, gg)
        d = minus_q.astype(Wn.dtype, copy=False).dot(Wn)  # d = −Wᵀq − γg
        d -= self.gamma * g_host
        return torch.from_numpy(d), gtd

    def _minus_q(self, p: np.ndarray, gg: float) -> tuple[np.ndarray, float]:
        """(−q, gᵀd) with Hg = γg + Wᵀq, q = M[Sᵀg; γYᵀg] over W's rows, from p = Wg."""
        m, R_inv, gamma = self.m, self.R_inv, self.gamma
        u = R_inv.dot(p[:m])  # R⁻¹Sᵀg (.dot: half the cost of @ on these sizes)
        w = p[m:] - self.YY.dot(u)
        w *= gamma
        w -= self._D * u  # −((D + γYᵀY)R⁻¹Sᵀg − γYᵀg)
        minus_q = np.empty(2 * m)
        np.dot(w, R_inv, out=minus_q[:m])  # S-coefficients, −R⁻ᵀ(…)
        np.multiply(u, gamma, out=minus_q[m:])  # Y-coefficients, −(−γR⁻¹Sᵀg)
        return minus_q, float(p.dot(minus_q)) - gamma * gg  # gᵀd = −pᵀq − γ‖g‖²

    def _time_order(self) -> tuple[np.ndarray, ...]:
        """Index of the m × m matrices with ring slots in time order, oldest first (the unused
        ones, then the pairs as they came): the state dict's order."""
        slots = (self.count + np.arange(self.m)) % self.m
        return np.ix_(slots, slots)

    def state_dict(self) -> dict[str, Any]:
        self._read_pending()  # fold the unread products in (one read, at save time)
        order = self._time_order()
        return {
            "W": self.W,
            "SY": torch.from_numpy(self.SY[order] * self._upper),  # time order, oldest first
            "YY": torch.from_numpy(self.YY[order]),
            # R⁻¹ as it was updated, so a reload continues bit for bit; a list of floats,
            # because torch.optim's load_state_dict casts tensors to the parameters' dtype
            "R_inv": self.R_inv[order].tolist(),
            "count": self.count,
            "gamma": self.gamma,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shape = (self.m, self.m)
        if tuple(state["YY"].shape) != shape:
            raise ValueError(
                f"this L-BFGS state holds {state['YY'].shape[0]} pairs, but history_size is "
                f"{self.m}; load it with history_size={state['YY'].shape[0]}."
            )
        self.reset()  # nothing pending, no stale view of an old W
        self.count, self.gamma = int(state["count"]), float(state["gamma"])
        SY = np.array(state["SY"].tolist(), dtype=np.float64).reshape(shape)
        YY = np.array(state["YY"].tolist(), dtype=np.float64).reshape(shape)
        order = self._time_order()
        self.SY[order], self.YY[order] = SY, YY
        if "R_inv" in state:
            self.R_inv[order] = np.array(state["R_inv"], dtype=np.float64).reshape(shape)
        else:  # a state dict without it: factor R afresh (equal up to rounding)
            R = SY * self._upper  # time order: upper triangular
            R.flat[:: self.m + 1] += R.diagonal() <= 0  # unused (or dropped) pairs: unit diagonal
            self.R_inv[order] = dtrtri(R, lower=0)[0]
        if state["W"] is not None:
            self._allocate(state["W"])


def _device(values: np.ndarray, like: Tensor) -> Tensor:
    """Host numbers onto `like`'s device and dtype. On a GPU through pinned memory, so the
    copy is queued without waiting for the stream (a pageable copy may synchronise)."""
    host = torch.from_numpy(values)  # on the CPU in float64, .to() below returns it as is
    if like.device.type == "cuda":
        host = host.pin_memory()  # the caching host allocator keeps it until the copy is done
    return host.to(like.device, like.dtype, non_blocking=True)


def _host(t: Tensor) -> np.ndarray:
    """A device tensor's values on the host in float64 (one blocking transfer on a GPU); also
    for dtypes numpy lacks (bfloat16)."""
    return t.to("cpu", torch.float64).numpy()


def _float64(values: np.ndarray) -> np.ndarray:
    return values if values.dtype == np.float64 else values.astype(np.float64)


NUMPY_MAX_N = 10_000
"""The longest vectors the host algebra hands to numpy. Above it numpy's BLAS (OpenBLAS) runs
a dot product on threads of its own, which spin after each call while torch's threads, parallel
above 2¹⁵ elements, wait on them for whole scheduler ticks: on Rosenbrock n = 10⁵ (2 cores)
L-BFGS took 603 ms with numpy against 84 ms with torch alone, CG 108 against 53; at n ≤ 10⁴
numpy is faster (L-BFGS 7.9 against 10.5 ms at n = 10³) — measured A/B in one process."""


def on_host(t: Tensor) -> bool:
    """Whether the host algebra uses numpy on `t`'s memory in place: a CPU float32/float64
    tensor whose rows (vectors of the problem) are at most NUMPY_MAX_N long."""
    return (
        t.device.type == "cpu"
        and t.dtype in (torch.float32, torch.float64)
        and (t.shape[-1] if t.dim() else 1) <= NUMPY_MAX_N
    )
