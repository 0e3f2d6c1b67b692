"""Non-finite values, failing line searches and divergence: RELIABILITY N3, N4, N6."""

from __future__ import annotations

import math
import time

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dlopt.optim import Status, minimize

from .problems import device_path as _device_path

METHODS = ["newton", "newton-cg", "cg", "bfgs", "lbfgs"]
DOCUMENTED = set(Status)


def _bowl(x):
    return ((x - 1.5) ** 2).sum()


class NaNAfter:
    def __init__(self, k):
        self.k, self.calls = k, 0

    def __call__(self, x):
        self.calls += 1
        value = _bowl(x)
        return value * math.nan if self.calls > self.k else value


SCENARIOS = {
    "all-nan": lambda x: (x * math.nan).sum(),
    "nan-outside-box": lambda x: torch.where(x.abs().max() > 1.0, _bowl(x) * math.nan, _bowl(x)),
    "inf-outside-box": lambda x: torch.where(x.abs().max() > 1.0, _bowl(x) + math.inf, _bowl(x)),
    "nan-after-k-evals": None,  # NaNAfter(3), fresh per case
    "nan-gradient": lambda x: _bowl(x) + torch.sqrt(((x - x.detach()) ** 2).sum() + 0.0),
    "non-smooth": lambda x: x.abs().sum(),
    "indefinite": lambda x: (x[0] ** 2 - x[1] ** 2 + 0.25 * x[1] ** 4).sum(),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("method", METHODS)
def test_no_nan_parameters_and_an_honest_status(method, scenario):
    """N3: 5 methods × 7 scenarios: a result every time, finite x, success only when true."""
    fun = SCENARIOS[scenario] or NaNAfter(3)
    x0 = torch.tensor([0.5, -0.3], dtype=torch.float64)
    start = time.perf_counter()
    result = minimize(fun, x0, method=method, max_iter=200)
    assert time.perf_counter() - start < 5
    assert result.status in DOCUMENTED and result.message
    if scenario == "all-nan":
        assert torch.equal(result.x, x0) and result.status is Status.NONFINITE
    else:
        assert bool(torch.isfinite(result.x).all()), (method, scenario, result)
    if result.success:
        assert math.isfinite(result.fun) and result.grad_norm <= 1e-5
    if not (math.isfinite(result.fun) and bool(torch.isfinite(result.jac).all())):
        assert not result.success
    if scenario in ("nan-outside-box", "inf-outside-box"):
        assert (
            result.success
            and torch.allclose(
                result.x, torch.tensor([1.0, 1.0], dtype=torch.float64) * 1.5, atol=1e-4
            )
        ) or result.x.abs().max() <= 1.0
    if scenario == "indefinite" and method == "newton":
        assert result.success and result.fun < fun(x0).item()  # never ascends


def test_a_failed_line_search_keeps_the_last_accepted_iterate_bitwise():
    """N4: non-smooth objective, max_ls = 1: status line search failed, x = last accepted."""
    accepted = []
    result = minimize(
        lambda x: x.abs().sum() + 0.1 * (x**2).sum(),
        torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64),
        method="lbfgs",
        max_ls=1,
        callback=lambda r: accepted.append(r.x.clone()) and None,
    )
    assert result.status in (Status.LINE_SEARCH_FAILED, Status.CONVERGED)
    if result.status is Status.LINE_SEARCH_FAILED:
        assert accepted and torch.equal(result.x, accepted[-1])
        assert result.fun == pytest.approx(float(result.x.abs().sum() + 0.1 * (result.x**2).sum()))


def test_divergence_guard_stops_and_keeps_the_best_iterate():
    """N6: without a line search a too-long fixed step blows f up; stop, keep the best x."""
    fun = lambda x: (x**4).sum()  # noqa: E731
    result = minimize(
        fun, torch.tensor([1.0], dtype=torch.float64), method="gd", line_search="none", max_iter=50
    )
    assert result.status is Status.DIVERGED
    assert result.fun <= fun(torch.tensor([1.0], dtype=torch.float64)).item()


class SyncCounter:
    """Counts host reads (item, tolist, numpy, float, int, bool) of tensors."""

    NAMES = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__")

    def __init__(self, monkeypatch):
        self.count = 0
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)

            def counted(tensor, *args, _original=original, **kwargs):
                self.count += 1
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counted)


def _sync_problem(problem):
    from .problems import PROBLEMS, extended_rosenbrock, rosenbrock_x0

    if problem == "logistic":
        return next((p.torch_f, torch.tensor(p.x0)) for p in PROBLEMS if p.name == problem)
    return extended_rosenbrock, torch.tensor(rosenbrock_x0(100))


@pytest.mark.parametrize("problem", ["rosenbrock-100", "logistic"])
@pytest.mark.parametrize("method", ["lbfgs", "cg"])
def test_host_synchronisations_per_iteration(method, problem, monkeypatch):
    """≤ 3 host reads per iteration on average (torch.optim.LBFGS: 27–43), on the device
    path."""
    fun, x0 = _sync_problem(problem)
    _device_path(monkeypatch)
    counter = SyncCounter(monkeypatch)
    result = minimize(fun, x0, method=method)
    monkeypatch.undo()
    assert result.success
    assert counter.count / result.nit <= 3.0, counter.count / result.nit


@pytest.mark.parametrize(
    ("method", "per_evaluation", "per_iteration"), [("lbfgs", 5, 9), ("cg", 6, 3)]
)
def test_torch_operations_on_the_device_path(method, per_evaluation, per_iteration, monkeypatch):
    """Each torch operation is a kernel launch on a GPU (microseconds of host time when kernels
    are small). Besides the objective's: per evaluation aminmax, the dots (gᵀg, gᵀd and, for
    CG, gᵀg₀), one stack for the single read, x + t·d; per iteration L-BFGS's direction and
    pair (measured 517 for 48 evaluations and 35 iterations), CG's −g + βd (399 for 59, 22)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from dlopt.optim.objective import FunctionObjective

    _device_path(monkeypatch)
    inside = [False]
    evaluate = FunctionObjective.evaluate

    def marked(self, *args, **kwargs):
        inside[0] = True
        try:
            return evaluate(self, *args, **kwargs)
        finally:
            inside[0] = False

    monkeypatch.setattr(FunctionObjective, "evaluate", marked)

    class Count(TorchDispatchMode):
        ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.ops += not inside[0]
            return func(*args, **(kwargs or {}))

    fun, x0 = _sync_problem("rosenbrock-100")
    with Count():
        result = minimize(fun, x0, method=method)
    assert result.success
    budget = per_evaluation * result.nfev + per_iteration * result.nit
    assert Count.ops <= budget, (Count.ops, result.nfev, result.nit)


@pytest.mark.parametrize("method_name", ["lbfgs", "cg"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_host_path_computes_the_device_paths_numbers(dtype, method_name, monkeypatch):
    """The CPU path (numpy for L-BFGS, torch for CG, norms filled in for an accepted step) and
    the device path (every number in one read) compute the same numbers: an evaluation's
    f, ‖g‖∞, ‖g‖², gᵀd, gᵀg₀ and an L-BFGS direction from the same memory of pairs."""
    from dlopt.optim.directions import NonlinearCG
    from dlopt.optim.lbfgs import LBFGS
    from dlopt.optim.objective import FunctionObjective
    from dlopt.optim.solver import Solver

    from .problems import extended_rosenbrock, rosenbrock_x0

    torch.manual_seed(0)
    n = 100
    x = torch.tensor(rosenbrock_x0(n), dtype=dtype)
    method = LBFGS(history_size=5) if method_name == "lbfgs" else NonlinearCG()
    method.uses_g_dot_old = True  # have every number computed
    solver = Solver(method, FunctionObjective(extended_rosenbrock, x.shape))
    it = solver.start(x)
    solver.run(it, max_iter=8)  # 8 pairs: the ring buffer has wrapped
    g_old = torch.randn(n, dtype=dtype)
    d = torch.randn(n, dtype=dtype)
    point_on = x + 0.01 * torch.randn(n, dtype=dtype)
    state = method.state_dict()
    pending_g = torch.randn(n, dtype=dtype)

    def numbers():
        at, point = solver.evaluate(point_on, d, 0.5, g_old)
        point = solver.complete(point, g_old)  # the host path's numbers of an accepted step
        gnorm = solver._iterate(point_on, at, point).gnorm  # on the host: when asked for
        values = [point.f, gnorm, point.gg, point.gtd, point.g_dot_old]
        if method_name != "lbfgs":  # CG's direction is the same torch expression on both
            return values, None
        fresh = LBFGS(history_size=5)
        fresh.load_state_dict(state)
        direction, gtd = fresh.direction(pending_g, None, float(pending_g @ pending_g))
        return [*values, gtd], direction

    host, d_host = numbers()
    _device_path(monkeypatch)
    device, d_device = numbers()
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    assert host == pytest.approx(device, rel=rtol)
    if d_device is not None:
        torch.testing.assert_close(d_host, d_device, rtol=rtol, atol=rtol * d_device.abs().max())


@pytest.mark.parametrize("over, numpy_used", [(0, True), (2, False)])
def test_numpy_serves_only_vectors_its_blas_keeps_on_one_thread(over, numpy_used):
    """Above NUMPY_MAX_N the CPU runs the device path in torch alone: OpenBLAS's threads on a
    long dot product starve torch's (L-BFGS 7× slower at n = 10⁵ on two cores)."""
    from dlopt.optim.lbfgs import LBFGS
    from dlopt.optim.objective import FunctionObjective
    from dlopt.optim.placement import NUMPY_MAX_N
    from dlopt.optim.solver import Solver

    from .problems import extended_rosenbrock, rosenbrock_x0

    n = NUMPY_MAX_N + over  # even, as Rosenbrock wants
    x = torch.tensor(rosenbrock_x0(n), dtype=torch.float64)
    method = LBFGS(history_size=3)
    solver = Solver(method, FunctionObjective(extended_rosenbrock, x.shape))
    solver.run(solver.start(x), max_iter=4)
    assert solver._host is numpy_used
    assert (method._host_W is not None) is numpy_used
    assert method.W is not None and method.W.shape == (6, n)


@pytest.mark.parametrize("method", ["lbfgs", "cg"])
def test_the_host_path_computes_norms_only_for_accepted_steps(method, monkeypatch):
    """On the CPU a rejected trial step costs f and ∇fᵀd only: ‖g‖² (with gᵀg₀) is computed
    once per accepted step and at the start, and ‖g‖∞ only where ‖g‖² ≤ n·tol² leaves the
    convergence test open; the device path computes all three with every evaluation's one
    read."""
    from dlopt.optim.solver import Solver

    fills = [0]
    complete = Solver.complete

    def counted(self, point, g_old):
        fills[0] += point.partial
        return complete(self, point, g_old)

    monkeypatch.setattr(Solver, "complete", counted)
    inf_norms = [0]
    vector_norm = torch.linalg.vector_norm

    def counted_norm(x, ord=2, *args, **kwargs):
        inf_norms[0] += ord == math.inf
        return vector_norm(x, ord, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "vector_norm", counted_norm)
    fun, x0 = _sync_problem("rosenbrock-100")
    result = minimize(fun, x0, method=method)
    assert result.success
    assert result.nfev > result.nit + 1  # some trial steps were rejected
    assert fills[0] == result.nit + 1
    assert 1 <= inf_norms[0] <= result.nit // 4, (inf_norms[0], result.nit)
    fills[0] = 0
    _device_path(monkeypatch)
    assert minimize(fun, x0, method=method).success
    assert fills[0] == 0  # every device evaluation came complete


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 300),
    st.floats(1e-12, 1e3),
    st.floats(0.5, 2.0),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
@example(n=300, tol=0.1, scale=1.0, equal=True, seed=0)  # ‖g‖∞ = tol: ‖g‖² rounds either way
@example(n=7, tol=1e-5, scale=1.0, equal=True, seed=1)
def test_the_convergence_test_decides_as_the_inf_norm_does(n, tol, scale, equal, seed):
    """Iterate.converged(tol) skips the pass over g while ‖g‖² > n·tol²; it answers exactly
    ‖g‖∞ ≤ tol, also where that bound is tight (every |g_i| equal, near tol)."""
    from dlopt.optim.objective import Evaluation
    from dlopt.optim.solver import Iterate

    generator = torch.Generator().manual_seed(seed)
    g = torch.randn(n, generator=generator, dtype=torch.float64)
    if equal:
        g = g.sign() + (g == 0)
    g = g * (tol * scale / g.abs().max())
    it = Iterate(g, Evaluation(torch.zeros(()), g), 0.0, float(g @ g))
    assert it.converged(tol) == bool(g.abs().max() <= tol)


@pytest.mark.parametrize("problem", ["rosenbrock-100", "logistic"])
@pytest.mark.parametrize("method", ["lbfgs", "cg", "bfgs"])
def test_the_host_path_and_the_device_path_reach_the_same_minimizer(method, problem, monkeypatch):
    """End to end: the two paths differ only in rounding (dot products summed in another
    order), so both converge, to the same x, with evaluation counts in the same range."""
    fun, x0 = _sync_problem(problem)
    host = minimize(fun, x0, method=method, max_iter=5000)
    _device_path(monkeypatch)
    device = minimize(fun, x0, method=method, max_iter=5000)
    assert host.success and device.success
    assert abs(host.nfev - device.nfev) <= max(5, 0.5 * device.nfev), (host.nfev, device.nfev)
    torch.testing.assert_close(host.x, device.x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["gd", "cg", "bfgs", "lbfgs"])
def test_tolerances_below_the_rounding_of_f_are_still_reached(method):
    """With f ≈ 1e4 the Armijo decrease near the optimum is below f's rounding; the approximate
    Wolfe test (slope decides, decrease within a few ulps) still converges."""
    from .problems import extended_rosenbrock, rosenbrock_x0

    result = minimize(
        lambda x: 1e4 + extended_rosenbrock(x),
        torch.tensor(rosenbrock_x0(10)),
        method=method,
        tol=1e-7,
        max_iter=50_000,
    )
    assert result.success, (method, result.message, result.grad_norm)
