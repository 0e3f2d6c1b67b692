"""The line search's Wolfe guarantees and the quasi-Newton updates' positive definiteness."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlopt.optim import strong_wolfe
from dlopt.optim.directions import BFGS, StepInfo
from dlopt.optim.lbfgs import LBFGS
from dlopt.optim.line_search import Point
from dlopt.optim.objective import Evaluation


@st.composite
def smooth_problem_and_descent_direction(draw):
    """f(x) = Σ aᵢ(xᵢ − cᵢ)² + b·Σ cos(xᵢ) (nonconvex for b > 0), a descent direction d."""
    n = draw(st.integers(1, 6))
    floats = st.floats(-3, 3, allow_nan=False)
    a = torch.tensor(
        draw(st.lists(st.floats(0.1, 10), min_size=n, max_size=n)), dtype=torch.float64
    )
    c = torch.tensor(draw(st.lists(floats, min_size=n, max_size=n)), dtype=torch.float64)
    x = torch.tensor(draw(st.lists(floats, min_size=n, max_size=n)), dtype=torch.float64)
    b = draw(st.floats(0, 2))
    noise = torch.tensor(
        draw(st.lists(st.floats(-0.9, 0.9), min_size=n, max_size=n)), dtype=torch.float64
    )
    scale = draw(st.floats(1e-3, 1e3))

    def f(z):
        return (a * (z - c) ** 2).sum() + b * torch.cos(z).sum()

    def grad(z):
        z = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(z), z)
        return g

    g = grad(x)
    d = -(g + noise * g.abs()) * scale  # a perturbed, rescaled steepest descent
    return f, grad, x, d


def _phi(f, grad, x, d):
    def phi(t):
        g = grad(x + t * d)
        return Point(t, float(f(x + t * d)), float(g @ d), g, float(g.abs().max()))

    return phi


@settings(max_examples=300, deadline=None)
@given(smooth_problem_and_descent_direction(), st.sampled_from([0.1, 0.9]))
def test_every_accepted_step_satisfies_both_wolfe_conditions(case, c2):
    f, grad, x, d = case
    phi = _phi(f, grad, x, d)
    start = phi(0.0)
    if not start.gtd < -1e-12:
        return  # not a descent direction (flat point)
    result = strong_wolfe(phi, start, 1.0, c1=1e-4, c2=c2)
    p = result.point
    assert p.f <= start.f, "never above φ(0)"
    if result.success:
        assert p.f <= start.f + 1e-4 * p.t * start.gtd + 1e-12 * abs(start.f), "Wolfe 1"
    if result.wolfe:
        assert abs(p.gtd) <= c2 * abs(start.gtd) + 1e-12, "Wolfe 2"
    assert result.nfev <= 25


def test_nan_trial_steps_are_shrunk_not_accepted():
    def f(z):
        return torch.where(z > 2, torch.full_like(z, math.nan), (z - 1.5) ** 2).sum()

    x, d = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)

    def grad(z):
        z = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(z), z)
        return g

    phi = _phi(f, grad, x, d)
    result = strong_wolfe(phi, phi(0.0), 10.0)
    assert result.success and 0 < result.point.t <= 2 and math.isfinite(result.point.f)


def _two_loop(S, Y, g):
    """Textbook L-BFGS two-loop recursion (Nocedal & Wright Alg. 7.4) as the reference."""
    q, alphas = g.clone(), []
    for s, y in reversed(list(zip(S, Y, strict=True))):
        rho = 1 / (y @ s)
        alpha = rho * (s @ q)
        q -= alpha * y
        alphas.append((alpha, rho, s, y))
    q *= (S[-1] @ Y[-1]) / (Y[-1] @ Y[-1])
    for alpha, rho, s, y in reversed(alphas):
        beta = rho * (y @ q)
        q += s * (alpha - beta)
    return -q


def _learn(method, s, y):
    """The step x → x + s (t = 1, d = s) with gradient change y (g: 0 → y), gᵀd = −1 before it,
    so that the step's sᵀy equals s·y."""
    sy = float(s @ y)
    info = StepInfo(1.0, -1.0, sy - 1.0, 1.0, 1.0, 0.0, 2.2e-16)
    method.step_taken(s, torch.zeros_like(y), y, info)


def _pairs(n, k, seed):
    generator = torch.Generator().manual_seed(seed)
    Q = torch.randn(n, n, generator=generator, dtype=torch.float64)
    A = Q @ Q.T + n * torch.eye(n, dtype=torch.float64)  # s → y = As: valid curvature pairs
    S = [torch.randn(n, generator=generator, dtype=torch.float64) for _ in range(k)]
    return S, [A @ s for s in S], torch.randn(n, generator=generator, dtype=torch.float64)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 12), st.integers(1, 15), st.integers(1, 6), st.integers(0, 1000))
def test_compact_lbfgs_equals_the_two_loop_recursion(n, k, m, seed):
    S, Y, g = _pairs(n, k, seed)
    method = LBFGS(history_size=m)
    for s, y in zip(S, Y, strict=True):
        _learn(method, s, y)
    at = Evaluation(torch.zeros(()), g)
    expected = _two_loop(S[-m:], Y[-m:], g)
    direction, slope = method.direction(g, at, float(g @ g))
    torch.testing.assert_close(direction, expected, rtol=1e-8, atol=1e-10)
    # gᵀd comes from the host's small algebra (no extra device read); it must be the slope
    assert slope == pytest.approx(float(g @ direction), rel=1e-9, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 10), st.integers(1, 14), st.integers(0, 13), st.integers(0, 1000))
def test_lbfgs_drops_a_pair_whose_products_break_curvature(n, k, bad_at, seed):
    """A pair that passed the solver's sᵀy test but whose own products say sᵀy ≤ 0 (rounding)
    is dropped when they are read: the direction is the two-loop recursion over the other
    pairs of the window, before and after the ring wraps past it."""
    S, Y, g = _pairs(n, k, seed)
    bad_at = min(bad_at, k)
    m = 4
    method, fed = LBFGS(history_size=m), []
    for i, (s, y) in enumerate(zip(S, Y, strict=True)):
        if i == bad_at:
            bad = torch.ones(n, dtype=torch.float64)
            method.step_taken(bad, torch.zeros(n), -bad, StepInfo(1.0, -1.0, 1.0, 1, 1, 0, 0))
            fed.append(None)
            method.direction(g, Evaluation(torch.zeros(()), g), 1.0)  # its products are read
        _learn(method, s, y)
        fed.append((s, y))
    window = [pair for pair in fed[-m:] if pair is not None]
    expected = _two_loop([s for s, _ in window], [y for _, y in window], g)
    direction, slope = method.direction(g, Evaluation(torch.zeros(()), g), float(g @ g))
    torch.testing.assert_close(direction, expected, rtol=1e-8, atol=1e-10)
    assert slope == pytest.approx(float(g @ direction), rel=1e-9, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 10), st.integers(1, 12), st.integers(0, 1000))
def test_quasi_newton_inverse_hessians_stay_positive_definite(n, k, seed):
    S, Y, _ = _pairs(n, k, seed)
    bfgs, lbfgs = BFGS(), LBFGS(history_size=5)
    for s, y in zip(S, Y, strict=True):
        _learn(bfgs, s, y)
        _learn(lbfgs, s, y)
    bad = torch.randn(n, dtype=torch.float64)
    _learn(bfgs, bad, -bad)  # negative curvature: must be skipped
    _learn(lbfgs, bad, -bad)
    eye = torch.eye(n, dtype=torch.float64)
    for method in (bfgs, lbfgs):
        # H's columns are −direction(e_i); symmetric positive definite
        H = torch.stack(
            [-method.direction(e, Evaluation(torch.zeros(()), e), 1.0)[0] for e in eye], 1
        )
        torch.testing.assert_close(H, H.T, rtol=1e-6, atol=1e-8)
        assert float(torch.linalg.eigvalsh((H + H.T) / 2).min()) > 0
