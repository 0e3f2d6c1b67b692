"""The contenders of `dlopt bench optim`, each at its best interface: dlopt's minimize(),
SciPy (jac=True, hessp), torch.optim.LBFGS and pytorch-minimize, with evaluations counted
inside the objective."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import scipy.optimize
import torch
from torch import Tensor

from dlopt.benchmarks.harness import wall_clock
from dlopt.benchmarks.optim_problems import GTOL, Problem
from dlopt.optim import minimize


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


@contextmanager
def quiet_jit_deprecation() -> Iterator[None]:
    """Without torch 2.13's DeprecationWarning for ``torch.jit.script``, which torchmin's import
    and torch's own forward-mode decompositions (torch.func.jvp) call: a warning about their
    code that the bench would print as its own."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
        yield


def _torchmin(problem: Problem, method: str) -> dict[str, float]:
    """pytorch-minimize's `method` on the same torch objective, forward calls counted inside
    it (each one f+∇f there). Its Newton-CG's Hv products reuse the graph, out of reach of a
    counter in the objective: its result's ``ncg``, the CG iterations (one product each; a CG
    solve that ends on negative curvature made one more, uncounted), is the count shown — it
    has no ``nhev``, and reading that field reported 0."""
    with quiet_jit_deprecation():
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
        "nhev": int(getattr(res, "ncg", 0) or 0),
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


def interleaved_runs(
    calls: dict[str, Callable[[], dict[str, float]]], repeats: int, pause: float = 0.0
) -> dict[str, list[dict[str, float]]]:
    """Each call's `repeats` runs, taken in turns (a, b, c, a, b, c, …) so that a drift of the
    machine's speed weighs on every contender alike; `pause` seconds before each run let the
    threads of the last one (OpenBLAS's spin about 0.1 s) fall asleep first."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            time.sleep(pause)
            runs[name].append(call())
    return runs


def best_interleaved(
    calls: dict[str, Callable[[], dict[str, float]]], repeats: int, pause: float = 0.0
) -> dict[str, dict[str, float]]:
    """Each call's fastest run of `repeats` taken in turns (`interleaved_runs`)."""
    return fastest(interleaved_runs(calls, repeats, pause))


def fastest(runs: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each contender's run with the fewest seconds."""
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
