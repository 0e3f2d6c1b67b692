"""The iteration shared by minimize() and the optimizer classes: direction, line search, update.

Host reads: one per objective evaluation — f, ∇fᵀd, ‖∇f‖∞, ‖∇f‖² and ∇fᵀ∇f₀ in a single
transfer — and one per iteration for the new direction: its slope ∇fᵀd (BFGS and the Newton
methods), or the products L-BFGS's host algebra needs, slope included. Gradient descent and
nonlinear CG know their slope on the host already.

On the CPU there is nothing to transfer, and what costs is the library calls and the passes
over the gradient: numpy (a call costs about 1 µs, torch's dispatcher 3–5) on the gradient's
memory — for n up to ``placement.NUMPY_MAX_N``; longer vectors take the device path in torch,
as numpy's BLAS threads would starve torch's — computes f and ∇fᵀd for every trial step, ‖∇f‖² and ∇fᵀ∇f₀ only for the step the line
search accepts (``Solver.complete``), and ‖∇f‖∞ only when ‖∇f‖² ≤ n·tol² leaves the convergence
test open (``Iterate.converged``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dlopt.optim import placement
from dlopt.optim.directions import Method, NonlinearCG, StepInfo
from dlopt.optim.line_search import LineSearchResult, Point, backtracking, strong_wolfe
from dlopt.optim.objective import Evaluation, Objective
from dlopt.optim.result import Status


@dataclass(slots=True)
class Iterate:
    x: Tensor
    at: Evaluation
    f: float
    gg: float  # ‖∇f‖²
    known_gnorm: float | None = None  # ‖∇f‖∞ once computed (on a device: always, it is free)

    @property
    def g(self) -> Tensor:
        return self.at.g

    @property
    def gnorm(self) -> float:
        """‖∇f‖∞."""
        if self.known_gnorm is None:
            self.known_gnorm = float(torch.linalg.vector_norm(self.g, math.inf))
        return self.known_gnorm

    def converged(self, tol: float) -> bool:
        """‖∇f‖∞ ≤ tol. As ‖∇f‖∞ ≥ ‖∇f‖₂/√n, while ‖∇f‖² > n·tol² — most iterations — the
        answer is known without a pass over ∇f (the factor covers the rounding of ‖∇f‖²)."""
        if self.known_gnorm is None and self.gg > self.g.numel() * tol * tol * 1.0001:
            return False
        return self.gnorm <= tol

    @property
    def finite(self) -> bool:
        """f and ∇f finite. ‖∇f‖² is finite when every entry is, unless it overflowed."""
        return math.isfinite(self.f) and (math.isfinite(self.gg) or math.isfinite(self.gnorm))


@dataclass
class Memory:
    """What carries over between calls (an optimizer's successive step() calls)."""

    nit: int = 0
    f_prev: float = math.nan
    since_reset: int = 0  # iterations since the method's memory was last reset
    slope_prev: float = math.nan  # t·∇fᵀd of the last accepted step (its first-order change)
    took_unit_step: bool = False  # the last accepted step was t = lr


class Solver:
    """Runs `method` on `objective` from a flat x (see the module docstring)."""

    def __init__(
        self,
        method: Method,
        objective: Objective,
        *,
        tol: float = 1e-5,
        line_search: str = "strong_wolfe",
        lr: float = 1.0,
        c1: float = 1e-4,
        max_ls: int = 25,
        memory: Memory | None = None,
    ) -> None:
        self.method, self.objective = method, objective
        self.tol, self.line_search, self.lr, self.c1, self.max_ls = tol, line_search, lr, c1, max_ls
        self.memory = memory or Memory()
        self._met_nonfinite = False
        self._host: bool | None = None  # numpy works on the gradient's memory (fixed per run)

    def evaluate(
        self,
        x: Tensor,
        d: Tensor | None = None,
        t: float = 0.0,
        g_old: Tensor | None = None,
        d_host: np.ndarray | None = None,
    ) -> tuple[Evaluation, Point]:
        curvature = self.method.needs_curvature or self.line_search == "exact"
        at = self.objective.evaluate(x, create_graph=curvature)
        g = at.g
        point = Point(t, math.nan, 0.0, g, math.nan, at.f, partial=True)
        if self._host is None:
            self._host = placement.on_host(g)
        if not self._host:  # every number in the evaluation's one read
            return at, self._fill_in_torch(point, d, g_old, with_f=True)
        # on the host a trial step needs only f and ∇fᵀd; the rest waits for acceptance
        point.f = at.f.item()
        if self.method.numpy_on_host:
            at.g_host = point.g_host = g.numpy()
        if d is None:
            return at, self.complete(point, g_old)
        if point.g_host is not None:
            # np.vdot: ndarray.dot's BLAS product, but without its floating-point check, so
            # inf and NaN are reported (as on the device) without an errstate (~2 µs each)
            point.gtd = float(np.vdot(point.g_host, d.numpy() if d_host is None else d_host))
        else:
            point.gtd = torch.dot(g, d).item()
        return at, point

    def complete(self, point: Point, g_old: Tensor | None) -> Point:
        """`point` with ‖g‖² and gᵀg₀ filled in. On the host they are computed only for the
        step the line search accepts (a rejected trial step skips passes over g), and ‖g‖∞
        only when the convergence test needs it (``Iterate.converged``); on a device all
        three ride along in every evaluation's one read."""
        if not point.partial:
            return point
        if not self.method.numpy_on_host:  # measured A/B: torch for CG, 0.8–0.9× numpy's time
            return self._fill_in_torch(point, None, g_old, with_f=False)
        assert point.g is not None
        g = point.g.numpy() if point.g_host is None else point.g_host
        point.gg = float(np.vdot(g, g))  # no floating-point check: see evaluate
        if g_old is not None and self.method.uses_g_dot_old:
            point.g_dot_old = float(np.vdot(g, g_old.numpy()))
        point.partial = False
        return point

    def _fill_in_torch(
        self, point: Point, d: Tensor | None, g_old: Tensor | None, *, with_f: bool
    ) -> Point:
        """`point`'s ‖g‖∞, ‖g‖², gᵀg₀ (and f, gᵀd if asked) by torch, in one host read."""
        g = point.g
        assert g is not None and point.f_tensor is not None
        parts = [torch.dot(g, g)]  # torch.dot: no Python-level @
        if with_f:  # a device's one read: ‖g‖∞ too, by max(−min, max) in one pass
            parts.extend(torch.aminmax(g))
            parts.append(point.f_tensor.to(g.dtype))
        if d is not None:
            parts.append(torch.dot(g, d))
        if g_old is not None and self.method.uses_g_dot_old:
            parts.append(torch.dot(g, g_old))
        point.gg, *rest = torch.stack(parts).tolist()  # the one read
        if with_f:
            g_min, g_max, point.f = rest[:3]
            point.gnorm = max(-g_min, g_max) if g_min == g_min and g_max == g_max else math.nan
            del rest[:3]
        if d is not None:
            point.gtd = rest.pop(0)
        if rest:
            point.g_dot_old = rest[0]
        point.partial = False
        return point

    def start(self, x: Tensor) -> Iterate:
        at, point = self.evaluate(x)
        return self._iterate(x, at, point)

    def _iterate(self, x: Tensor, at: Evaluation, point: Point) -> Iterate:
        return Iterate(x, at, point.f, point.gg, None if self._host else point.gnorm)

    def _initial_step(self, it: Iterate, gtd: float) -> float:
        memory = self.memory
        first_trial, going = self.method.first_trial, memory.since_reset > 0
        if self.method.scaled or (going and first_trial == "unit"):
            return self.lr
        if first_trial == "unit-while-taken" and (memory.took_unit_step or not going):
            # Newton-CG's step has a length from the start: t = 1 first (as scipy); from
            # min(1, 1/‖g‖) its battery median was 1.00× scipy's evaluations, worst 3.33×
            # (a linear least-squares problem); with t = 1: 0.87×, worst 1.62×
            return self.lr
        if going and gtd < 0 and first_trial == "slope":
            # gradient descent and CG, whose directions have no natural length: the step whose
            # first-order change t·∇fᵀd equals the last step's (Nocedal & Wright eq. 3.60).
            # Against scipy's "repeat the last decrease" (below): 491 → 405 evaluations for CG
            # over the six bench problems, 750 → 245 for gradient descent on logreg
            step = memory.slope_prev / gtd
            if math.isfinite(step) and step > 0:
                return step
        if math.isfinite(memory.f_prev) and gtd < 0:  # after a restart, or a shortened step
            # scipy's choice for CG, gradient descent and Newton-CG: the step that would
            # repeat the last decrease of f along a quadratic model, at most 1
            step = min(1.0, 1.01 * 2 * (it.f - memory.f_prev) / gtd)
            return step * self.lr if step > 0 else self.lr
        # a fresh start: min(1, 1/‖g‖₂), L-BFGS-B's first trial step (torch and torchmin use
        # 1/‖g‖₁); with it dlopt's L-BFGS makes exactly L-BFGS-B's evaluations on the bench
        return min(1.0, 1.0 / max(math.sqrt(it.gg), 1e-300)) * self.lr

    def _search(
        self, it: Iterate, d: Tensor, gtd: float, d_host: np.ndarray | None = None
    ) -> tuple[LineSearchResult, dict[float, tuple[Evaluation, Tensor]]]:
        seen: dict[float, tuple[Evaluation, Tensor]] = {}  # step → (evaluation, point)
        self._met_nonfinite = False

        def phi(t: float) -> Point:
            x_t = torch.add(it.x, d, alpha=t)  # one fused op; kept as the next iterate
            at, point = self.evaluate(x_t, d, t, it.g, d_host)
            seen[t] = (at, x_t)
            self._met_nonfinite |= not point.finite
            return point

        start = Point(0.0, it.f, gtd, it.g, math.nan, None, it.gg, it.gg)
        if self.line_search == "none":
            point = phi(self.lr)
            return LineSearchResult(point, 1, point.finite, False), seen
        if self.line_search == "exact" and it.at.hvp is not None:
            # the minimizer of the quadratic model along d: t = −gᵀd / dᵀHd (exact on a
            # quadratic; kept only if it decreases f enough, else strong Wolfe below)
            curvature = float(d @ it.at.hvp(d))
            if math.isfinite(curvature) and curvature > 0:
                exact = phi(-gtd / curvature)
                slack = 10 * torch.finfo(it.x.dtype).eps * abs(it.f)  # rounding near the optimum
                if exact.finite and exact.f <= it.f + self.c1 * exact.t * gtd + slack:
                    return LineSearchResult(exact, 1, True, False), seen
        step = self._initial_step(it, gtd)
        if self.line_search == "armijo":
            return backtracking(phi, start, step, c1=self.c1, max_ls=self.max_ls), seen
        result = strong_wolfe(
            phi,
            start,
            step,
            c1=self.c1,
            c2=self.method.c2,
            max_ls=self.max_ls,
        )
        if not result.success and result.nfev < self.max_ls:  # Armijo fallback (SPEC I6)
            tried = min(seen) if seen else step
            fallback = backtracking(
                phi, start, tried * 0.5, c1=self.c1, max_ls=self.max_ls - result.nfev
            )
            result = LineSearchResult(
                fallback.point, result.nfev + fallback.nfev, fallback.success, False
            )
        return result, seen

    def run(
        self, it: Iterate, max_iter: int, callback: Callable[[Iterate], bool | None] | None = None
    ) -> tuple[Iterate, Status, int]:
        """Up to `max_iter` iterations from `it`; returns (last accepted iterate, status, nit)."""
        if not it.finite:
            return it, Status.NONFINITE, 0
        best, retried = it, False
        eps = torch.finfo(it.x.dtype).eps
        for done in range(max_iter + 1):
            if it.converged(self.tol):
                return it, Status.CONVERGED, done
            if done == max_iter:
                return it, Status.MAX_ITER, done
            d, known = self.method.direction(it.g, it.at, it.gg)
            gtd = known if known is not None else float(it.g @ d)
            weak = isinstance(self.method, NonlinearCG) and -gtd < 1e-2 * it.gg
            if not (math.isfinite(gtd) and gtd < 0) or weak:
                self._reset()
                d, gtd = -it.g, -it.gg
            # d seen by numpy once per iteration, for every trial step's ∇fᵀd and the update
            d_host = d.numpy() if it.at.g_host is not None else None
            result, seen = self._search(it, d, gtd, d_host)
            if not result.success:
                if self.memory.since_reset > 0 and not retried:
                    self._reset()  # once: forget the curvature model, retry along −∇f
                    retried = True
                    continue
                status = Status.NONFINITE if self._met_nonfinite else Status.LINE_SEARCH_FAILED
                return it, status, done
            retried = False
            point = self.complete(result.point, it.g)
            assert point.g is not None
            info = StepInfo(
                point.t, gtd, point.gtd, it.gg, point.gg, point.g_dot_old, eps, point.t == self.lr
            )
            if d_host is not None and it.at.g_host is not None and point.g_host is not None:
                info.host = (d_host, it.at.g_host, point.g_host)
            self.method.step_taken(d, it.g, point.g, info)
            self.memory.f_prev = it.f
            self.memory.slope_prev = point.t * gtd
            self.memory.took_unit_step = point.t == self.lr
            self.memory.nit += 1
            self.memory.since_reset += 1
            at, x_new = seen[point.t]
            it = self._iterate(x_new, at, point)
            if not it.finite:
                return best, Status.NONFINITE, done + 1
            if it.f < best.f:
                best = it
            elif self.line_search == "none" and it.f - best.f > 1e3 * max(abs(best.f), 1e-12):
                return best, Status.DIVERGED, done + 1
            if callback is not None and callback(it):
                return it, Status.CALLBACK, done + 1
        return it, Status.MAX_ITER, max_iter

    def _reset(self) -> None:
        self.method.reset()
        self.memory.since_reset = 0
