"""The evaluation claims of ``dlopt bench optim``, on its own problems (extended Rosenbrock
n = 2 … 10⁴, logistic regression and the 64-32-10 MLP on digits): every dlopt method converges
wherever its SciPy counterpart does, with fun+grad evaluations ≤ SciPy's (median ratio ≤ 1.0,
none above 1.25×). Counts, not timings: the timings stay in the bench."""

from __future__ import annotations

import statistics

from dlopt.benchmarks.optim import PAIRS, _ours, _scipy, pairs_for, problems


def test_evaluations_against_scipy_on_the_bench_problems():
    ratios: dict[str, list[float]] = {ours: [] for ours, _ in PAIRS}
    for problem in problems():
        for ours, theirs in pairs_for(problem.x0.numel()):
            if theirs is None:
                continue
            reference = _scipy(problem, theirs)
            if not reference["ok"]:  # scipy's Newton-CG stops early on Rosenbrock
                continue
            run = _ours(problem, ours)
            assert run["ok"], f"{ours} failed on {problem.name} where scipy's {theirs} converged"
            ratios[ours].append(run["nfev"] / reference["nfev"])
    for method, values in ratios.items():
        assert values, method
        assert statistics.median(values) <= 1.0, (method, values)
        assert max(values) <= 1.25, (method, values)


def test_contenders_run_in_turns_and_the_table_keeps_every_run():
    """`dlopt bench optim` takes its contenders in turns (a, b, a, b, …) and its table's
    median and minimum are over all the repeats, not over the fastest run alone."""
    from dlopt.benchmarks.optim_contenders import fastest, interleaved_runs

    order: list[str] = []
    seconds = {"a": iter([3.0, 1.0, 2.0]), "b": iter([5.0, 6.0, 4.0])}

    def call(name):
        def run():
            order.append(name)
            return {"seconds": next(seconds[name])}

        return run

    runs = interleaved_runs({"a": call("a"), "b": call("b")}, 3)
    assert order == ["a", "b"] * 3
    assert [r["seconds"] for r in runs["a"]] == [3.0, 1.0, 2.0]
    assert fastest(runs) == {"a": {"seconds": 1.0}, "b": {"seconds": 4.0}}
