"""The notes under `dlopt bench optim`'s table: Hessian-vector product costs, the optimizer's
own time per iteration, memory traffic and every-core runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from torch import Tensor

from dlopt.benchmarks.harness import every_core, wall_clock
from dlopt.benchmarks.optim_contenders import (
    _clocked,
    _ours,
    _scipy,
    _torch_lbfgs,
    best_interleaved,
    quiet_jit_deprecation,
)
from dlopt.benchmarks.optim_problems import Problem, rosenbrock_problem
from dlopt.optim.objective import FunctionObjective


def _median_seconds(call: Callable[[], object], device: torch.device, repeats: int = 30) -> float:
    call()
    return statistics.median(wall_clock(call, device)[1] for _ in range(repeats))


def hvp_costs(problem: Problem) -> dict[str, float]:
    """Seconds of one f+∇f, and one Hv by each route, relative to f+∇f."""
    objective = FunctionObjective(problem.fun, problem.x0.shape)
    x = problem.x0 + 0.01
    v = torch.ones_like(x)
    device = x.device
    fg = _median_seconds(lambda: objective.evaluate(x), device)
    at = objective.evaluate(x, create_graph=True)
    assert at.hvp is not None
    reuse = _median_seconds(lambda: at.hvp(v), device)  # type: ignore[misc]

    def scratch() -> Tensor:
        t = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(problem.fun(t), t, create_graph=True)
        return torch.autograd.grad(g, t, v)[0]

    from torch.func import grad as fgrad
    from torch.func import jvp

    def forward_over_reverse() -> Tensor:
        return jvp(fgrad(problem.fun), (x,), (v,))[1]

    with quiet_jit_deprecation():  # torch's forward-mode decompositions, loaded on first use
        forward = _median_seconds(forward_over_reverse, device)
    return {
        "f+grad": fg,
        "hv (graph reused)": reuse / fg,
        "hv (graph rebuilt)": _median_seconds(scratch, device) / fg,
        "hv (torch.func jvp∘grad)": forward / fg,
    }


def _vs_torch_note(vs_torch: list[float], vs_defaults: list[float]) -> str:
    return (
        f"L-BFGS wall time, dlopt / torch.optim.LBFGS (strong Wolfe, history 10): median "
        f"{statistics.median(vs_torch):.2f}, max {max(vs_torch):.2f}; / torch.optim.LBFGS "
        f"with its defaults: median {statistics.median(vs_defaults):.2f}, "
        f"max {max(vs_defaults):.2f}"
    )


def hvp_notes(by_name: dict[str, Problem]) -> list[str]:
    notes = []
    for name in ("logreg-digits", "mlp-64-32-10"):
        costs = hvp_costs(by_name[name])
        notes.append(
            f"Hv cost on {name} (one f+∇f = {costs.pop('f+grad') * 1e3:.2f} ms): "
            + ", ".join(f"{k} {v:.2f}×" for k, v in costs.items())
        )
    return notes


def _with_memory_traffic(problem: Problem) -> Problem:
    """`problem` whose objective also copies 736 KB (the digits design matrix's size): the
    same optimizer work, measured after an objective that evicts the caches as logreg's does."""
    source = torch.randn(1437, 64, dtype=torch.float64)
    target = torch.empty_like(source)

    def fun(x: Tensor) -> Tensor:
        target.copy_(source)
        return problem.fun(x)

    return Problem(f"{problem.name} + 736 KB copy", fun, problem.x0)


def cold_pass_seconds(rows: int, n: int, runs: int = 51) -> float:
    """Median seconds of W·g (one pass over a rows × n float64 W, as L-BFGS makes twice per
    iteration) right after copying 16 MB, which flushes W out of the core's own caches."""
    W, g = np.random.default_rng(0).standard_normal((rows, n)), np.ones(n)
    flush_from, flush_to = np.ones(2**21), np.empty(2**21)
    seconds = []
    for _ in range(runs):
        np.copyto(flush_to, flush_from)
        start = time.perf_counter()
        W.dot(g)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def _ours_inside(problem: Problem, method: str) -> dict[str, float]:
    """`_ours`, with "inside": the seconds spent in its f+∇f evaluations (two clock reads
    per evaluation, well under 1 % of one)."""
    inside = [0.0]
    evaluate = FunctionObjective.evaluate
    FunctionObjective.evaluate = _clocked(evaluate, inside)  # type: ignore[method-assign]
    try:
        run = _ours(problem, method)
    finally:
        FunctionObjective.evaluate = evaluate  # type: ignore[method-assign]
    return {**run, "inside": inside[0]}


def every_core_notes(n: int = 100_000, repeats: int = 3) -> list[str]:
    """L-BFGS on Rosenbrock n with torch and BLAS on every core, as a program runs by default:
    dlopt, dlopt with numpy forced onto the long vectors (the host path before NUMPY_MAX_N),
    torch.optim.LBFGS and SciPy's L-BFGS-B. Numpy's BLAS threads spin after each call and
    starve torch's, whose objective then waits whole scheduler ticks."""
    from dlopt.optim import placement

    problem = rosenbrock_problem(n)
    limit = placement.NUMPY_MAX_N

    def numpy_forced() -> dict[str, float]:
        placement.NUMPY_MAX_N = n
        try:
            return _ours(problem, "lbfgs")
        finally:
            placement.NUMPY_MAX_N = limit

    with every_core() as cores:
        best = best_interleaved(
            {
                "dlopt": partial(_ours, problem, "lbfgs"),
                "dlopt, numpy on long vectors": numpy_forced,
                "torch.optim.LBFGS": partial(_torch_lbfgs, problem),
                "scipy L-BFGS-B": partial(_scipy, problem, "L-BFGS-B"),
            },
            repeats,
            pause=0.5,
        )
    return [
        f"L-BFGS on Rosenbrock n={n} with {cores} threads (a program's default), ms: "
        + ", ".join(f"{name} {run['seconds'] * 1e3:.0f}" for name, run in best.items())
        + " — numpy's BLAS threads starve torch's past NUMPY_MAX_N "
        f"= {limit}, which is why dlopt leaves long vectors to torch"
    ]


def overhead_per_iteration(problem: Problem, method: str, runs: int = 15) -> float:
    """Seconds per iteration outside the objective: (run time − time inside every f+∇f
    evaluation, measured in the loop) / iterations; the best of `runs` runs."""
    return min(
        (run["seconds"] - run["inside"]) / max(run["nit"], 1)
        for run in (_ours_inside(problem, method) for _ in range(runs))
    )
