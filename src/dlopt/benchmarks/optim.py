"""`dlopt bench optim`: dlopt's optimizers against scipy.optimize and torch.optim.LBFGS.

Problems (float64, same x0, success = ‖∇f‖∞ ≤ 1e-5 for everyone): extended Rosenbrock
(n = 2, 100, 1000, 10000), L2-regularized multinomial logistic regression on digits (n = 650)
and a 64-32-10 tanh MLP on digits, full batch (n = 2410). Every method sees the same torch
objective (scipy through a numpy wrapper), so evaluation counts and times compare like for like.
Pairs: CG↔CG, BFGS↔BFGS, L-BFGS↔L-BFGS-B, Newton-CG↔Newton-CG; plus torch.optim.LBFGS
(strong Wolfe, history 10) run to the same tolerance. Also: the cost of one Hessian-vector
product relative to one f+∇f, and the optimizer's own time per iteration (objective excluded).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from dlopt.benchmarks.harness import BenchReport, Timing, benchmark
from dlopt.benchmarks.optim_contenders import (
    TORCHMIN,
    _ours,
    _scipy,
    _torch_lbfgs,
    _torch_lbfgs_defaults,
    _torchmin,
    fastest,
    interleaved_runs,
    torchmin_available,
)
from dlopt.benchmarks.optim_device import SYNC_EVENTS, device_syncs, optim_benchmark_on_device
from dlopt.benchmarks.optim_notes import (
    _ours_inside,
    _vs_torch_note,
    _with_memory_traffic,
    cold_pass_seconds,
    every_core_notes,
    hvp_notes,
    overhead_per_iteration,
)
from dlopt.benchmarks.optim_problems import (
    GTOL,
    PAIRS,
    ROSENBROCK,
    Problem,
    flat_mlp,
    pairs_for,
    problems,
    rosenbrock_problem,
)

__all__ = [
    "GTOL",
    "PAIRS",
    "ROSENBROCK",
    "SYNC_EVENTS",
    "Problem",
    "_ours",
    "_scipy",
    "device_syncs",
    "flat_mlp",
    "optim_benchmark",
    "pairs_for",
    "problems",
    "rosenbrock_problem",
]


@benchmark(
    "optim",
    "Newton-CG, CG, BFGS, L-BFGS vs scipy.optimize and torch.optim.LBFGS",
    devices=("cpu", "cuda"),
)
def optim_benchmark(repeats: int, device: torch.device) -> BenchReport:
    if device.type != "cpu":
        return optim_benchmark_on_device(repeats, device)
    rows = [
        f"{'problem':<16}{'method':<11}{'ok':>4}{'nit':>7}{'nfev':>7}{'nhev':>7}{'ms':>10}"
        f"   | {'scipy ok':>8}{'nit':>7}{'nfev':>7}{'ms':>10}   nfev ratio"
    ]
    ratios: dict[str, list[float]] = {m: [] for m, _ in PAIRS}
    converge_gaps = []
    lbfgs_vs_torch: list[float] = []
    lbfgs_vs_defaults: list[float] = []
    lbfgs_floor: list[float] = []
    timings = []
    data: dict[str, dict[str, Any]] = {"runs": {}, "overhead_us": {}}
    every = problems()  # built once: loading and splitting digits is not free
    for problem in every:
        n = problem.x0.numel()
        for ours, theirs in pairs_for(n):
            contenders: dict[str, Callable[[], dict[str, float]]] = {
                ours: partial(_ours_inside if ours == "lbfgs" else _ours, problem, ours)
            }
            if theirs is not None:  # every contender the same repeats, taken in turns
                contenders["scipy"] = partial(_scipy, problem, theirs)
            if ours == "lbfgs":
                contenders["torch"] = partial(_torch_lbfgs, problem)
                contenders["torch defaults"] = partial(_torch_lbfgs_defaults, problem)
            if torchmin_available() and not (ours == "bfgs" and n >= 1000):
                contenders["torchmin"] = partial(_torchmin, problem, ours)
            runs = interleaved_runs(contenders, repeats)
            data["runs"][f"{problem.name} {ours}"] = runs  # every contender's every run
            best = fastest(runs)
            ours_run = best[ours]
            ref = best.get("scipy")
            ratio = ours_run["nfev"] / ref["nfev"] if ref and ref["nfev"] else float("nan")
            if ref and ref["ok"]:
                ratios[ours].append(ratio)
                if not ours_run["ok"]:
                    converge_gaps.append(f"{ours} on {problem.name}")
            scipy_text = (
                "   | skipped (scipy BFGS is O(n³) per iteration)"
                if ref is None
                else f"   | {ref['ok']!s:>8}{ref['nit']:>7}{ref['nfev']:>7}"
                f"{ref['seconds'] * 1e3:>10.1f}   {ratio:.2f}"
            )
            rows.append(
                f"{problem.name:<16}{ours:<11}{ours_run['ok']!s:>4}{ours_run['nit']:>7}"
                f"{ours_run['nfev']:>7}{ours_run['nhev']:>7}"
                f"{ours_run['seconds'] * 1e3:>10.1f}{scipy_text}"
            )
            if "torchmin" in best:
                tm = best["torchmin"]
                rows.append(
                    f"{'':<16}{'torchmin ' + TORCHMIN[ours]:<22}ok {tm['ok']!s:<5} nit "
                    f"{tm['nit']:<5} nfev {tm['nfev']:<6} nhev {tm['nhev']:<6} "
                    f"{tm['seconds'] * 1e3:.1f} ms   (dlopt/torchmin time "
                    f"{ours_run['seconds'] / tm['seconds']:.2f})"
                )
            if ours == "lbfgs":
                torch_run, defaults_run = best["torch"], best["torch defaults"]
                lbfgs_vs_torch.append(ours_run["seconds"] / torch_run["seconds"])
                lbfgs_vs_defaults.append(ours_run["seconds"] / defaults_run["seconds"])
                # dlopt's own evaluations at no optimizer cost, in its fastest run: the lowest
                # ratio any L-BFGS making them could reach (the objective's time is not the
                # optimizer's to cut)
                lbfgs_floor.append(ours_run["inside"] / torch_run["seconds"])
                for label, run, ratio in (
                    ("torch.optim.LBFGS", torch_run, lbfgs_vs_torch[-1]),
                    ("  same, its defaults", defaults_run, lbfgs_vs_defaults[-1]),
                ):
                    rows.append(
                        f"{'':<16}{label:<22}ok {run['ok']!s:<5} "
                        f"{'step() calls' if run is defaults_run else 'nit'} "
                        f"{run['nit']:<5} nfev {run['nfev']:<6} "
                        f"{run['seconds'] * 1e3:.1f} ms   (dlopt/torch time {ratio:.2f})"
                    )
                # every run, so that the table's median and minimum are of all `repeats`
                timings.append(Timing(f"L-BFGS {problem.name}", [r["seconds"] for r in runs[ours]]))
    notes = ["", "fun+grad evaluations, dlopt / scipy, where scipy converged:"]
    for method, values in ratios.items():
        if values:
            notes.append(
                f"  {method:<10} median {statistics.median(values):.2f}, max "
                f"{max(values):.2f} over {len(values)} problems"
            )
    notes.append(f"dlopt failed where scipy converged: {converge_gaps or 'nowhere'}")
    notes.append(
        "SciPy runs with jac=True (one forward and backward per evaluation) and hessp; every "
        "contender gets the same repeats in turns, its fastest run shown; evaluations are "
        "counted inside the objective. pytorch-minimize: "
        + ("installed" if torchmin_available() else "not installed (make bench-env)")
    )
    notes.append(_vs_torch_note(lbfgs_vs_torch, lbfgs_vs_defaults))
    notes.append(
        "  the floor of that ratio — dlopt's time inside the objective alone / torch's "
        "whole run, what an optimizer costing nothing would reach with the same evaluations: "
        + ", ".join(f"{p.name} {r:.2f}" for p, r in zip(every, lbfgs_floor, strict=True))
    )
    by_name = {p.name: p for p in every}
    notes += every_core_notes()
    notes += hvp_notes(by_name)
    notes.append("optimizer time per iteration, objective excluded (best of 15 runs):")
    by_name["rosenbrock-2 + 736 KB copy"] = _with_memory_traffic(by_name["rosenbrock-2"])
    for name in (
        "rosenbrock-2",
        "rosenbrock-100",
        "rosenbrock-1000",
        "rosenbrock-10000",
        "logreg-digits",
        "rosenbrock-2 + 736 KB copy",
    ):
        parts = []
        for ours, theirs in (("lbfgs", "L-BFGS-B"), ("cg", "CG")):
            scipy_best = min(_scipy(by_name[name], theirs)["overhead"] for _ in range(5))
            ours_best = overhead_per_iteration(by_name[name], ours)
            data["overhead_us"].setdefault(name, {}).update(
                {ours: ours_best * 1e6, theirs: scipy_best * 1e6}
            )
            parts.append(
                f"{ours} {ours_best * 1e6:.0f} µs (scipy {theirs} {scipy_best * 1e6:.0f} µs, "
                f"ratio {ours_best / scipy_best:.2f})"
            )
        notes.append(f"  {name}: " + ", ".join(parts))
    notes.append(
        "  (the last row: Rosenbrock-2 whose objective also copies the digits matrix, 736 KB — "
        "an objective's memory traffic slows the code that runs after it, any optimizer's)"
    )
    m, n = 10, 10_000  # L-BFGS's default history, the largest Rosenbrock
    notes.append(
        f"  one pass over L-BFGS's pairs at n={n} (W, 2·{m} × n float64, "
        f"{2 * m * n * 8 / 1e6:.1f} MB) after the caches were flushed: "
        f"{cold_pass_seconds(2 * m, n) * 1e6:.0f} µs; an iteration makes two"
    )
    bfgs = _ours(by_name["rosenbrock-1000"], "bfgs")
    notes.append(
        f"BFGS on extended Rosenbrock n=1000: {bfgs['seconds'] * 1e3:.0f} ms total, "
        f"{bfgs['nit']} iterations, converged {bfgs['ok']}"
    )
    return BenchReport(
        "Second-order optimizers vs scipy.optimize (float64, ‖∇f‖∞ ≤ 1e-5)",
        "run",
        timings,
        baseline=timings[0].name,
        notes=rows + notes,
        data=data,
    )
