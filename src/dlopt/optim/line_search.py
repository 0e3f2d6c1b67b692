"""One line search for every method (SPEC I6): strong Wolfe, with Armijo backtracking as fallback.

Along a direction d the methods minimize φ(t) = f(x + t·d). A step t is accepted when

    φ(t) ≤ φ(0) + c₁·t·φ'(0)        (sufficient decrease, Wolfe 1)
    |φ'(t)| ≤ c₂·|φ'(0)|            (strong curvature, Wolfe 2)

found by bracketing and zooming with cubic interpolation (Nocedal & Wright Alg. 3.5–3.6, as in
scipy and torch). A NaN or inf at a trial step counts as "too far": the step is bracketed and
shrunk. If no step satisfies both conditions within `max_ls` evaluations, the best point that
satisfies sufficient decrease is returned (never one with φ > φ(0)); if there is none, the
search fails and the caller keeps x.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import Tensor


@dataclass(slots=True)  # not frozen: a frozen dataclass costs 5× as much to make (0.9 µs),
class Point:  # and one is made per evaluation
    """φ at step t: value, slope φ'(t) = ∇f·d, the gradient there and its inf-norm."""

    t: float
    f: float
    gtd: float
    g: Tensor | None
    gnorm: float
    f_tensor: Tensor | None = None
    gg: float = math.nan  # gᵀg
    g_dot_old: float = math.nan  # gᵀg₀ with g₀ the gradient where the search started
    partial: bool = False  # gnorm, gg and g_dot_old not computed yet (see Solver.complete)
    g_host: np.ndarray | None = None  # g's memory seen by numpy (the solver's host path)

    @property
    def finite(self) -> bool:
        return math.isfinite(self.f) and math.isfinite(self.gtd)


Phi = Callable[[float], Point]


@dataclass(slots=True)
class LineSearchResult:
    point: Point
    nfev: int
    success: bool  # an acceptable step with φ(t) < φ(0) was found
    wolfe: bool  # both strong Wolfe conditions hold at it


def cubic_minimizer(a: Point, b: Point, low: float, high: float) -> float:
    """Minimizer of the cubic through (t, f, f') at a and b, clamped to [low, high]."""
    try:
        d1 = a.gtd + b.gtd - 3 * (a.f - b.f) / (a.t - b.t)
        d2_square = d1 * d1 - a.gtd * b.gtd
        if d2_square < 0 or not math.isfinite(d2_square):
            return (low + high) / 2
        d2 = math.sqrt(d2_square)
        if a.t <= b.t:
            t = b.t - (b.t - a.t) * ((b.gtd + d2 - d1) / (b.gtd - a.gtd + 2 * d2))
        else:
            t = a.t - (a.t - b.t) * ((a.gtd + d2 - d1) / (a.gtd - b.gtd + 2 * d2))
    except ZeroDivisionError:
        return (low + high) / 2
    return min(max(t, low), high) if math.isfinite(t) else (low + high) / 2


def strong_wolfe(
    phi: Phi,
    start: Point,
    step: float,
    *,
    c1: float = 1e-4,
    c2: float = 0.9,
    max_ls: int = 25,
    tolerance_change: float = 1e-10,
) -> LineSearchResult:
    """Find t > 0 meeting the strong Wolfe conditions along a descent direction (φ'(0) < 0).

    Near a minimizer the decrease c₁·t·φ'(0) falls below the rounding of f; then, as in
    Hager–Zhang's approximate Wolfe conditions, sufficient decrease may miss by a few ulps of
    |f(0)| while the slope condition, which stays reliable, decides.
    """
    f0, gtd0 = start.f, start.gtd
    slack = 4 * 2.0**-52 * abs(f0) if math.isfinite(f0) else 0.0  # float64 rounding of f
    prev, evals = start, 0
    lo = hi = None
    t = step
    while evals < max_ls:
        new = phi(t)
        evals += 1
        if not new.finite:
            lo, hi = prev, Point(t, math.inf, math.nan, None, math.nan)
            break
        if new.f > f0 + c1 * t * gtd0 + slack or (evals > 1 and new.f >= prev.f + slack):
            lo, hi = prev, new
            break
        if abs(new.gtd) <= -c2 * gtd0:
            return LineSearchResult(new, evals, True, True)
        if new.gtd >= 0:
            lo, hi = new, prev
            break
        low, high = t + 0.01 * (t - prev.t), 10 * t  # extrapolate, at most ×10
        prev, t = new, cubic_minimizer(prev, new, low, high)
    else:
        best = prev if prev.t > 0 and prev.f < f0 else None
        return LineSearchResult(best or start, evals, best is not None, False)

    insufficient_progress = False
    while evals < max_ls:
        assert lo is not None and hi is not None
        width = abs(hi.t - lo.t)
        if width <= tolerance_change * max(abs(lo.t), abs(hi.t)):  # relative: scale-free
            break  # the bracket collapsed: keep the best point found
        low, high = min(lo.t, hi.t), max(lo.t, hi.t)
        t = cubic_minimizer(lo, hi, low, high) if hi.finite else (lo.t + hi.t) / 2
        edge = 0.1 * (high - low)
        if min(high - t, t - low) < edge:  # too close to an end: torch's insufficient progress
            if insufficient_progress or t >= high or t <= low:
                t = high - edge if abs(t - high) < abs(t - low) else low + edge
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        new = phi(t)
        evals += 1
        if not new.finite:
            hi = Point(t, math.inf, math.nan, None, math.nan)
            continue
        if new.f > f0 + c1 * t * gtd0 + slack or new.f >= lo.f + slack:
            hi = new
        else:
            if abs(new.gtd) <= -c2 * gtd0:
                return LineSearchResult(new, evals, True, True)
            if new.gtd * (hi.t - lo.t) >= 0:
                hi = lo
            lo = new
    assert lo is not None
    ok = lo.t > 0 and lo.f < f0  # lo always meets sufficient decrease
    return LineSearchResult(lo if ok else start, evals, ok, False)


def backtracking(
    phi: Phi, start: Point, step: float, *, c1: float = 1e-4, shrink: float = 0.5, max_ls: int = 25
) -> LineSearchResult:
    """Armijo backtracking: t ← shrink·t until φ(t) ≤ φ(0) + c₁·t·φ'(0) (and finite)."""
    t, evals = step, 0
    while evals < max_ls:
        new = phi(t)
        evals += 1
        if new.finite and new.f <= start.f + c1 * t * start.gtd and new.f < start.f:
            return LineSearchResult(new, evals, True, False)
        t *= shrink
    return LineSearchResult(start, evals, False, False)
