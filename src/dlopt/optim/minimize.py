"""``minimize(fun, x0, method=...)``: the functional front door (SPEC I7)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dlopt._validation import check_choice, check_finite_number, check_positive_int
from dlopt.errors import InvalidParameterError
from dlopt.optim.directions import BFGS, GradientDescent, Method, NonlinearCG
from dlopt.optim.lbfgs import LBFGS
from dlopt.optim.newton import Newton, NewtonCG
from dlopt.optim.objective import FunctionObjective, work_dtype
from dlopt.optim.result import OptimizeResult, Status
from dlopt.optim.solver import Iterate, Solver

DENSE_MEMORY_BUDGET = 1 << 30  # bytes for BFGS's n×n matrix or Newton's n×n Hessian

METHODS: dict[str, Callable[[], Method]] = {
    "gd": GradientDescent,
    "newton": Newton,
    "newton-cg": NewtonCG,
    "cg": lambda: NonlinearCG("pr+"),
    "cg-fr": lambda: NonlinearCG("fr"),
    "cg-pr": lambda: NonlinearCG("pr"),
    "cg-hs": lambda: NonlinearCG("hs"),
    "bfgs": BFGS,
    "lbfgs": LBFGS,
}
LINE_SEARCHES = {
    "strong_wolfe": "strong_wolfe",
    "armijo": "armijo",
    "exact": "exact",
    "none": "none",
}


def check_dense_memory(method: str, n: int, itemsize: int, budget: int, caller: str) -> None:
    """Refuse BFGS's n×n matrix or Newton's n×n Hessian over `budget` bytes, naming the
    method that needs O(n) memory instead (Newton builds H from n batched products: about
    three n×n arrays at its peak)."""
    need = n * n * itemsize
    if need <= budget:
        return
    size = f"a dense {n}×{n} matrix ({need / 2**30:.1f} GiB)"
    advice = {
        "bfgs": f"BFGS keeps {size}, over the memory budget of {budget / 2**30:.1f} GiB; use "
        "L-BFGS (method='lbfgs' / dlopt.optim.LBFGS), which needs 2·m·n numbers.",
        "newton": f"Newton forms the exact Hessian, {size} and about 3× that while it is built, "
        f"over the memory budget of {budget / 2**30:.1f} GiB; use Newton-CG "
        "(method='newton-cg' / dlopt.optim.NewtonCG), which needs Hessian-vector products only.",
    }[method]
    raise InvalidParameterError(f"{caller}: {advice} (memory_budget= raises the limit.)")


def minimize(
    fun: Callable[[Tensor], Tensor],
    x0: Tensor,
    *,
    method: str = "lbfgs",
    tol: float = 1e-5,
    max_iter: int = 1000,
    line_search: str = "strong_wolfe",
    history_size: int = 10,
    max_ls: int = 25,
    memory_budget: int = DENSE_MEMORY_BUDGET,
    callback: Callable[[OptimizeResult], bool | None] | None = None,
) -> OptimizeResult:
    """Minimize the scalar `fun` over a tensor of x0's shape, dtype and device.

    Gradients come from autograd. Success means ‖∇f(x)‖∞ ≤ `tol` (scipy's gtol); every other
    ending — max_iter, a failed line search, NaN/inf, a callback's stop — is reported in
    ``status``/``message`` and never raised; ``x`` is then the last accepted (finite) iterate.

    Args:
        fun: x ↦ scalar tensor.
        x0: the starting point (any shape; float dtype).
        method: one of :data:`METHODS` — "gd", "newton", "newton-cg", "cg" (Polak–Ribière+),
            "cg-fr", "cg-pr", "cg-hs", "bfgs", "lbfgs".
        line_search: "strong_wolfe" (default; Armijo backtracking as fallback), "armijo",
            "exact" (t = −gᵀd/dᵀHd from one Hessian-vector product: exact on quadratics, the
            chapter's idealization; strong Wolfe when it fails), or "none" (fixed unit steps,
            with a divergence guard).
        memory_budget: bytes allowed for BFGS's n×n matrix or Newton's n×n Hessian (1 GiB);
            above it they refuse and name L-BFGS or Newton-CG.
        callback: called with the current result after each iteration; True stops the run.

    >>> import torch
    >>> res = minimize(lambda x: ((x - 3) ** 2).sum(), torch.zeros(4, dtype=torch.float64))
    >>> res.success, torch.allclose(res.x, torch.full((4,), 3.0, dtype=torch.float64))
    (True, True)
    """
    factory = check_choice("method", method, METHODS, caller="minimize")
    check_choice("line_search", line_search, LINE_SEARCHES, caller="minimize")
    check_finite_number("tol", tol, caller="minimize", nonnegative=True)
    check_positive_int("max_iter", max_iter, caller="minimize", minimum=0)
    check_positive_int("history_size", history_size, caller="minimize")
    check_positive_int("max_ls", max_ls, caller="minimize")
    check_positive_int("memory_budget", memory_budget, caller="minimize")
    if callback is not None and not callable(callback):
        raise InvalidParameterError(
            f"minimize(callback=...) must be callable; got {callback!r:.60}."
        )
    if not isinstance(x0, Tensor) or not torch.is_floating_point(x0):
        raise InvalidParameterError(
            f"minimize(x0=...) must be a floating-point tensor; got {x0!r:.60}."
        )
    if x0.numel() == 0:
        raise InvalidParameterError("minimize(x0=...) is empty: there is nothing to minimize.")
    if method in ("bfgs", "newton"):
        check_dense_memory(
            method, x0.numel(), x0.element_size(), memory_budget, f"minimize(method={method!r})"
        )
    direction = LBFGS(history_size) if method == "lbfgs" else factory()
    objective = FunctionObjective(fun, x0.shape, x0.dtype)
    solver = Solver(direction, objective, tol=tol, line_search=line_search, max_ls=max_ls)
    # half precision computes in float32 (see dlopt.optim.objective); x comes back in x0's dtype
    start = solver.start(x0.detach().reshape(-1).to(work_dtype(x0.dtype), copy=True))

    def result(it: Iterate, status: Status, nit: int) -> OptimizeResult:
        return OptimizeResult(
            x=it.x.view(x0.shape).to(x0.dtype),
            fun=it.f,
            jac=it.g.view(x0.shape).to(x0.dtype),
            nit=nit,
            nfev=objective.nfev,
            njev=objective.nfev,
            nhev=objective.nhev,
            status=status,
        )

    hook = None
    if callback is not None:

        def hook(it: Iterate) -> bool | None:
            return callback(result(it, Status.MAX_ITER, solver.memory.nit))

    final, status, nit = solver.run(start, max_iter, hook)
    return result(final, status, nit)
