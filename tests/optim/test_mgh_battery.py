"""The standard-problem battery: every method against its SciPy counterpart on the
Moré–Garbow–Hillstrom problems from their published starts (tests/optim/mgh.py), evaluations
counted inside the objective. dlopt must converge (‖∇f‖∞ ≤ 1e-5) wherever SciPy does. The
default run takes a fast subset; the full sweep (40 + 3 larger instances, with the median
and worst ratio of evaluations per method) is marked slow — ``tools/mgh_table.py`` prints
its table."""

from __future__ import annotations

import statistics

import pytest

from .mgh import (
    LARGER,
    MGH,
    SCIPY_METHOD,
    Comparison,
    compare,
    median_fair_ratio,
    stopped_short,
)

METHODS = ["cg", "bfgs", "lbfgs", "newton-cg", "newton"]
FAST = [
    "rosenbrock",
    "beale",
    "helical-valley",
    "bard",
    "box-3d",
    "powell-singular",
    "kowalik-osborne",
    "biggs-exp6",
    "penalty2-4",
    "trigonometric-10",
    "broyden-banded-10",
    "chebyquad-8",
]
BY_NAME = {p.name: p for p in MGH + LARGER}
WORST = 2.0  # no method above 2× scipy's evaluations on any problem scipy solves (fair_ratio)


def test_the_battery_is_wide():
    assert len(MGH) >= 35 and len({p.residuals for p in MGH}) >= 30
    assert {p.n for p in MGH if p.residuals is BY_NAME["watson-6"].residuals} == {6, 9}


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("method", METHODS)
def test_dlopt_converges_wherever_scipy_does(method, name):
    c = compare(BY_NAME[name], method)
    if c.theirs_converged:
        assert c.ours_converged, c
    if c.ours_converged and c.theirs_converged:  # a minimum no worse than scipy's
        assert c.ours_f <= c.theirs_f * (1 + 1e-2) + 1e-6, c
    f_min = BY_NAME[name].f_min
    if c.ours_converged and f_min:  # the published minimum, to what ‖∇f‖∞ ≤ 1e-5 allows
        assert c.ours_f == pytest.approx(f_min, rel=0.1), c
    if c.theirs_converged:  # never above 2× scipy's evaluations (at equal accuracy), as the
        # median from three starts 1e-12 apart (some paths are chaotic: median_fair_ratio)
        ratio, runs = median_fair_ratio(BY_NAME[name], method, first=c)
        assert ratio <= WORST, runs


def test_the_fair_ratio_compares_at_equal_accuracy():
    """Where scipy's gradient test passes at a higher f than dlopt ends at, dlopt is charged
    the evaluations it took to reach scipy's f, not those of its longer run; elsewhere the
    plain ratio stands."""
    plain = Comparison("p", "m", 30, 10, True, True, 1.0, 1.0)
    assert plain.fair_ratio == plain.ratio == 3.0 and not plain.theirs_stopped_short
    short = Comparison("p", "m", 30, 10, True, True, 1e-20, 1e-6, ours_nfev_at_theirs_f=12)
    assert short.ratio == 3.0 and short.fair_ratio == 1.2
    assert stopped_short(2.4e-7, 1.9e-21) and stopped_short(7.18e-5, 7.09e-5)
    assert not stopped_short(7.0905e-5, 7.09e-5) and not stopped_short(1e-11, 1e-20)


def test_powell_badly_scaled_lbfgs_is_a_fair_exception():
    """L-BFGS-B passes ‖∇f‖∞ ≤ 1e-5 on the flat floor of Powell's badly scaled valley at
    f = 2.4e-7 (x₂ ≈ 7.42; the minimizer has x₂ = 9.106 and f* = 0) after 88 evaluations;
    dlopt's iterates sit off the floor (‖∇f‖∞ ≈ 5 there) and go on to f ≈ 1e-21 in 197. It
    reaches scipy's f in fewer evaluations than scipy."""
    c = compare(BY_NAME["powell-badly-scaled"], "lbfgs")
    assert c.theirs_converged and c.ours_converged and c.theirs_stopped_short, c
    assert c.ratio > 2 and c.fair_ratio <= 1.0, c
    assert c.ours_f < 1e-12 < 1e-8 < c.theirs_f, c


# median of the plain ratios of evaluations (ours / scipy's) and worst fair ratio (at equal
# accuracy, see Comparison) over the problems scipy solves, as measured with
# tools/mgh_table.py (2026-12-02; cg 2026-12-07, ν = c₂ = 0.25): cg 0.87 / 2.00 (penalty2-10
# from three starts, 249/276/240 evaluations against scipy's 115/145/120: both crawl along a
# flat floor and stop wherever ‖∇f‖∞ first dips under 1e-5; with ν = 0.2, c₂ = 0.1 it was
# 0.96 / 2.38 here), bfgs 0.95 / 1.90
# (freudenstein-roth), lbfgs 1.00 / 1.17 (discrete-integral-10), newton-cg 0.87 / 1.62
# (penalty2-4), newton vs trust-exact 1.00 / 1.97 (biggs-exp6; 2.97 under the former
# Levenberg–Marquardt damping, see dlopt.optim.newton.Newton). The medians must not pass
# their bounds (≤ 1.0), nor any problem 2×: lbfgs on powell-badly-scaled is 2.24× plainly,
# 0.93× at equal accuracy (scipy stops on the valley's flat floor at f = 2.4e-7;
# test_powell_badly_scaled_lbfgs_is_a_fair_exception)
MEDIAN = {
    "cg": 0.95,
    "bfgs": 1.0,
    "lbfgs": 1.0,
    "newton-cg": 0.9,
    "newton": 1.0,
}


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_the_full_battery(method):
    ratios, fair = [], []
    for problem in MGH + LARGER:
        c = compare(problem, method)
        if c.theirs_converged:
            assert c.ours_converged, c
            ratios.append(c.ratio)
            fair.append(median_fair_ratio(problem, method, first=c))  # from three starts
    assert statistics.median(ratios) <= MEDIAN[method], sorted(ratios)
    worst = max(fair, key=lambda item: item[0])
    assert worst[0] <= WORST, worst[1]
    assert SCIPY_METHOD[method]
