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
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import scipy.optimize
import torch
import torch.nn.functional as F
from torch import Tensor

from dlopt.benchmarks.harness import BenchReport, Timing, benchmark, every_core, wall_clock
from dlopt.data import load_bundled, split_dataset
from dlopt.optim import minimize
from dlopt.optim.objective import FunctionObjective

GTOL = 1e-5
ROSENBROCK = (2, 100, 1000, 10000)
PAIRS = [("cg", "CG"), ("bfgs", "BFGS"), ("lbfgs", "L-BFGS-B"), ("newton-cg", "Newton-CG")]


def pairs_for(n: int) -> list[tuple[str, str | None]]:
    """The (dlopt method, SciPy counterpart) pairs run on a problem of n unknowns; None where
    SciPy's is skipped: its BFGS is O(n³) per iteration, minutes at n = 1000. dlopt's dense
    BFGS stops at n = 2000 (n² numbers; L-BFGS is the method past that)."""
    return [
        (ours, None if theirs == "BFGS" and n >= 1000 else theirs)
        for ours, theirs in PAIRS
        if not (ours == "bfgs" and n > 2000)
    ]


@dataclass(frozen=True)
class Problem:
    name: str
    fun: Callable[[Tensor], Tensor]
    x0: Tensor


def _rosenbrock(x: Tensor) -> Tensor:
    a, b = x[0::2], x[1::2]
    return (100 * (b - a**2) ** 2 + (1 - a) ** 2).sum()


def rosenbrock_problem(n: int, device: torch.device | str = "cpu") -> Problem:
    """Extended Rosenbrock from the standard start (−1.2, 1, −1.2, 1, …)."""
    x0 = torch.full((n,), -1.2, dtype=torch.float64, device=device)
    x0[1::2] = 1.0
    return Problem(f"rosenbrock-{n}", _rosenbrock, x0)


def problems(
    device: torch.device | str = "cpu", rosenbrock: tuple[int, ...] = ROSENBROCK
) -> list[Problem]:
    out = [rosenbrock_problem(n, device) for n in rosenbrock]
    train = split_dataset(load_bundled("digits"), seed=0).train
    X, y = train.X.double().to(device), train.y.to(device)

    def logistic(w: Tensor) -> Tensor:
        W, b = w[:640].view(64, 10), w[640:]
        return F.cross_entropy(X @ W + b, y) + 1e-3 * (W**2).sum()

    out.append(
        Problem("logreg-digits", logistic, torch.zeros(650, dtype=torch.float64, device=device))
    )
    mlp, size = flat_mlp(X, y, 32)
    generator = torch.Generator().manual_seed(0)
    w0 = torch.randn(size, generator=generator, dtype=torch.float64) * 0.1
    out.append(Problem("mlp-64-32-10", mlp, w0.to(device)))
    return out


def flat_mlp(
    X: Tensor,
    y: Tensor,
    hidden: int,
    activation: Callable[[Tensor], Tensor] = torch.tanh,
    weight_decay: float = 0.0,
) -> tuple[Callable[[Tensor], Tensor], int]:
    """(w ↦ loss, len(w)): cross-entropy (+ weight_decay·‖w‖²) of a one-hidden-layer MLP,
    X.shape[1] → hidden → classes, as a function of its parameters in one flat vector
    w = [W₁, b₁, W₂, b₂] — the form minimize() and SciPy take."""
    classes = int(y.max()) + 1
    shapes = [(X.shape[1], hidden), (hidden,), (hidden, classes), (classes,)]
    sizes = [int(np.prod(s)) for s in shapes]

    def fun(w: Tensor) -> Tensor:
        W1, b1, W2, b2 = (p.view(s) for p, s in zip(w.split(sizes), shapes, strict=True))
        loss = F.cross_entropy(activation(X @ W1 + b1) @ W2 + b2, y)
        return loss + weight_decay * (w**2).sum() if weight_decay else loss

    return fun, sum(sizes)


def _numpy(fun: Callable[[Tensor], Tensor]) -> tuple[Callable, Callable, Callable]:
    """SciPy's best interface to a torch objective: (x ↦ (f, ∇f) from one forward and one
    backward — `jac=True` — , x ↦ ∇f, (x, p) ↦ Hp). Passing f and ∇f separately would cost
    SciPy an extra forward per evaluation, a handicap the bench must not give it."""

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        t = torch.from_numpy(x).requires_grad_(True)
        value = fun(t)
        (g,) = torch.autograd.grad(value, t)
        return float(value.detach()), g.numpy()

    def grad(x: np.ndarray) -> np.ndarray:
        return fg(x)[1]

    def hessp(x: np.ndarray, p: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(x).requires_grad_(True)
        (g,) = torch.autograd.grad(fun(t), t, create_graph=True)
        (hp,) = torch.autograd.grad(g, t, torch.from_numpy(p))
        return hp.numpy()

    return fg, grad, hessp


def _clocked(call: Callable, inside: list[float]) -> Callable:
    """`call`, adding the seconds spent in it to inside[0] (a plain function, so it also
    works as a method patched onto a class)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            inside[0] += time.perf_counter() - start

    return run


def _scipy(problem: Problem, method: str) -> dict[str, float]:
    """SciPy's `method` with `jac=True` (and `hessp` for Newton-CG); evaluations counted
    inside the objective, as dlopt's are."""
    inside = [0.0]  # seconds spent in the objective's callbacks
    fg, grad, hessp = _numpy(problem.fun)
    counts = {"fg": 0, "hv": 0}

    def counted_fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        counts["fg"] += 1
        return fg(x)

    def counted_hessp(x: np.ndarray, p: np.ndarray) -> np.ndarray:
        counts["hv"] += 1
        return hessp(x, p)

    options: dict[str, float] = {"maxiter": 20_000}
    if method == "L-BFGS-B":
        options.update(gtol=GTOL, ftol=0.0)
    elif method != "Newton-CG":
        options.update(gtol=GTOL)
    start = time.perf_counter()
    res = scipy.optimize.minimize(
        _clocked(counted_fg, inside),
        problem.x0.numpy(),
        jac=True,
        method=method,
        options=options,
        **({"hessp": _clocked(counted_hessp, inside)} if method == "Newton-CG" else {}),
    )
    seconds = time.perf_counter() - start
    outside = seconds - inside[0]
    gnorm = float(np.abs(grad(res.x)).max())
    return {
        "ok": gnorm <= GTOL,
        "nit": res.nit,
        "nfev": counts["fg"],
        "nhev": counts["hv"],
        "seconds": seconds,
        "gnorm": gnorm,
        "overhead": outside / max(res.nit, 1),
    }


def _ours(problem: Problem, method: str) -> dict[str, float]:
    res, seconds = wall_clock(
        lambda: minimize(problem.fun, problem.x0, method=method, tol=GTOL, max_iter=20_000),
        problem.x0.device,
    )
    return {
        "ok": res.success,
        "nit": res.nit,
        "nfev": res.nfev,
        "nhev": res.nhev,
        "seconds": seconds,
        "gnorm": res.grad_norm,
    }


TORCHMIN = {"cg": "cg", "bfgs": "bfgs", "lbfgs": "l-bfgs", "newton-cg": "newton-cg"}


def torchmin_available() -> bool:
    """pytorch-minimize (`torchmin`) is a bench-only contender: `make bench-env` installs it
    with --no-deps; it is never a dependency."""
    import importlib.util

    return importlib.util.find_spec("torchmin") is not None


def _torchmin(problem: Problem, method: str) -> dict[str, float]:
    """pytorch-minimize's `method` on the same torch objective, forward calls counted inside
    it (each one f+∇f there; its Newton-CG's Hv products reuse the graph and are counted as
    its result reports them)."""
    import torchmin

    calls = [0]

    def fun(x: Tensor) -> Tensor:
        calls[0] += 1
        return problem.fun(x)

    key = "xtol" if method == "newton-cg" else "gtol"
    tol = 1e-10 if method == "newton-cg" else GTOL
    res, seconds = wall_clock(
        lambda: torchmin.minimize(
            fun, problem.x0.clone(), TORCHMIN[method], max_iter=20_000, options={key: tol}
        ),
        problem.x0.device,
    )
    x = res.x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(problem.fun(x), x)
    gnorm = float(g.abs().max())
    return {
        "ok": gnorm <= GTOL,
        "nit": int(getattr(res, "nit", 0)),
        "nfev": calls[0],
        "nhev": int(getattr(res, "nhev", 0) or 0),
        "seconds": seconds,
        "gnorm": gnorm,
    }


def _counting_closure(
    optimizer: torch.optim.Optimizer, fun: Callable[[Tensor], Tensor], x: Tensor
) -> tuple[Callable[[], Tensor], list[int]]:
    """torch's closure convention, counting its calls (each one f+∇f evaluation)."""
    calls = [0]

    def closure() -> Tensor:
        calls[0] += 1
        optimizer.zero_grad()
        loss = fun(x)
        loss.backward()
        return loss

    return closure, calls


def best_interleaved(
    calls: dict[str, Callable[[], dict[str, float]]], repeats: int, pause: float = 0.0
) -> dict[str, dict[str, float]]:
    """Each call's fastest run of `repeats`, taken in turns (a, b, c, a, b, c, …) so that a
    drift of the machine's speed weighs on every contender alike; `pause` seconds before each
    run let the threads of the last one (OpenBLAS's spin about 0.1 s) fall asleep first."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            time.sleep(pause)
            runs[name].append(call())
    return {name: min(done, key=lambda r: r["seconds"]) for name, done in runs.items()}


def _torch_lbfgs(problem: Problem) -> dict[str, float]:
    x = problem.x0.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [x],
        lr=1,
        max_iter=20_000,
        max_eval=25_000,
        history_size=10,
        tolerance_grad=GTOL,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )
    closure, calls = _counting_closure(optimizer, problem.fun, x)

    _, seconds = wall_clock(lambda: optimizer.step(closure), x.device)
    gnorm = float(x.grad.abs().max()) if x.grad is not None else float("nan")
    nit = optimizer.state[x].get("n_iter", 0)
    return {
        "ok": gnorm <= GTOL,
        "nit": nit,
        "nfev": calls[0],
        "nhev": 0,
        "seconds": seconds,
        "gnorm": gnorm,
    }


def _torch_lbfgs_defaults(problem: Problem, max_steps: int = 2000) -> dict[str, float]:
    """torch.optim.LBFGS with its defaults (lr 1, no line search, history 100, 20 iterations
    per step(), tolerance_change 1e-9) but the common tolerance_grad, with step() called until
    a call finds ‖∇f‖∞ ≤ 1e-5 at its first evaluation — the loop a user writes around it."""
    x = problem.x0.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([x], tolerance_grad=GTOL)
    closure, calls = _counting_closure(optimizer, problem.fun, x)

    def run() -> int:
        for steps in range(1, max_steps + 1):
            before = calls[0]
            optimizer.step(closure)
            if calls[0] - before == 1:  # it stopped at its first evaluation: converged (or NaN)
                return steps
        return max_steps

    steps, seconds = wall_clock(run, x.device)
    with torch.enable_grad():  # the gradient at the final x, outside the timing
        (g,) = torch.autograd.grad(problem.fun(x), x)
    gnorm = float(g.abs().max())
    return {
        "ok": gnorm <= GTOL,
        "nit": steps,
        "nfev": calls[0],
        "nhev": 0,
        "seconds": seconds,
        "gnorm": gnorm,
    }


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

    return {
        "f+grad": fg,
        "hv (graph reused)": reuse / fg,
        "hv (graph rebuilt)": _median_seconds(scratch, device) / fg,
        "hv (torch.func jvp∘grad)": _median_seconds(forward_over_reverse, device) / fg,
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
    from dlopt.optim import directions

    problem = rosenbrock_problem(n)
    limit = directions.NUMPY_MAX_N

    def numpy_forced() -> dict[str, float]:
        directions.NUMPY_MAX_N = n
        try:
            return _ours(problem, "lbfgs")
        finally:
            directions.NUMPY_MAX_N = limit

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
            best = best_interleaved(contenders, repeats)
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
                timings.append(Timing(f"L-BFGS {problem.name}", [ours_run["seconds"]]))
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
    )


SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def device_syncs(call: Callable[[], dict[str, float]]) -> tuple[int, dict[str, float]]:
    """Host–device synchronisations during `call` (CUDA runtime calls seen by the profiler),
    less the two the timing itself adds."""
    from torch.profiler import ProfilerActivity, profile

    with warnings.catch_warnings():  # "profiler clears events at the end of each cycle"
        warnings.simplefilter("ignore", UserWarning)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            run = call()
    count = sum(event.count for event in prof.key_averages() if event.key in SYNC_EVENTS)
    return max(count - 2, 0), run  # none at all off CUDA


def optim_benchmark_on_device(repeats: int, device: torch.device) -> BenchReport:
    """On a GPU: dlopt's L-BFGS, CG and Newton-CG against torch.optim.LBFGS — wall time and
    device synchronisations per iteration (SciPy runs on the host only, so no SciPy rows)."""
    rows = [
        f"{'problem':<18}{'method':<19}{'ok':>6}{'nit':>6}{'nfev':>6}{'ms':>10}{'syncs/it':>10}"
    ]
    timings: list[Timing] = []
    lbfgs_vs_torch: list[float] = []
    lbfgs_vs_defaults: list[float] = []
    sizes = (*ROSENBROCK[2:], 100_000, 1_000_000)
    every = problems(device, sizes)
    for problem in every:
        runs: dict[str, Callable[[], dict[str, float]]] = {
            "dlopt lbfgs": partial(_ours, problem, "lbfgs"),
            "dlopt cg": partial(_ours, problem, "cg"),
            "dlopt newton-cg": partial(_ours, problem, "newton-cg"),
            "torch.optim.LBFGS": partial(_torch_lbfgs, problem),
            "torch LBFGS defaults": partial(_torch_lbfgs_defaults, problem),
        }
        for call in runs.values():
            call()  # warm-up: kernels, allocator
        fastest = best_interleaved(runs, repeats)
        seconds = {}
        for name, call in runs.items():
            best = fastest[name]
            syncs, _ = device_syncs(call)
            seconds[name] = best["seconds"]
            rows.append(
                f"{problem.name:<18}{name:<19}{best['ok']!s:>6}{best['nit']:>6}"
                f"{best['nfev']:>6}{best['seconds'] * 1e3:>10.1f}"
                f"{syncs / max(best['nit'], 1):>10.1f}"
            )
        lbfgs_vs_torch.append(seconds["dlopt lbfgs"] / seconds["torch.optim.LBFGS"])
        lbfgs_vs_defaults.append(seconds["dlopt lbfgs"] / seconds["torch LBFGS defaults"])
        rows.append(
            f"{'':<18}L-BFGS wall time dlopt / torch: {lbfgs_vs_torch[-1]:.2f} "
            f"(strong Wolfe), {lbfgs_vs_defaults[-1]:.2f} (torch's defaults; nit = step() calls)"
        )
        timings.append(Timing(f"L-BFGS {problem.name}", [seconds["dlopt lbfgs"]]))
    notes = [
        "",
        f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else device}",
        _vs_torch_note(lbfgs_vs_torch, lbfgs_vs_defaults),
    ]
    notes += hvp_notes({p.name: p for p in every})
    return BenchReport(
        f"Second-order optimizers on {device} vs torch.optim.LBFGS (float64, ‖∇f‖∞ ≤ 1e-5)",
        "run",
        timings,
        baseline=timings[0].name,
        notes=rows + notes,
    )
