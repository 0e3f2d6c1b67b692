"""The torch.optim front door: Newton, NewtonCG, NonlinearCG, BFGS, LBFGS (SPEC I7).

Each ``step(closure)`` runs up to `max_iter` iterations of the same solver as :func:`minimize`
on all parameters as one flat vector, continuing the method's memory from the previous step
(so calling ``step`` on successive minibatches gives mini-batch L-BFGS). It returns the loss
at the *final* point (torch.optim.LBFGS returns the first one). The state — curvature pairs,
counters, the last status — lives on the first parameter, so ``state_dict`` round-trips.

Closures: for NonlinearCG, BFGS and LBFGS the usual one (zero grads, compute the loss, call
``backward()``, return the loss). Newton and NewtonCG differentiate the loss themselves: their
closure returns the loss *without* calling backward (``step_policy.closure_backward`` is False;
the Trainer knows).

The torch.optim contract, with torch.optim.LBFGS as the reference: sparse gradients are
densified (the methods work on one dense vector; as torch.optim.LBFGS does); a param group
added later (``add_param_group``) must carry the same options as the first — the method
treats all parameters as one vector, so per-group options cannot be honoured and are refused
up front (ValueError) instead of being silently ignored; when the set of parameters that
require grad changes between steps (a group added, layers unfrozen), the curvature memory —
built for the old vector — is dropped and the method starts afresh; with no parameter
requiring grad, ``step`` is a no-op that returns the closure's loss; float16 and bfloat16
parameters are optimized with the solver in float32 (see :mod:`dlopt.optim.objective`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor

from dlopt._validation import check_choice, check_finite_number, check_positive_int
from dlopt.errors import InvalidParameterError
from dlopt.optim import directions, lbfgs, newton
from dlopt.optim.minimize import DENSE_MEMORY_BUDGET, LINE_SEARCHES, check_dense_memory
from dlopt.optim.objective import ClosureObjective
from dlopt.optim.result import Status
from dlopt.optim.solver import Memory, Solver
from dlopt.optim.step_policy import StepPolicy


class _SecondOrder(torch.optim.Optimizer):
    """Shared machinery; subclasses say which method and which options they take."""

    # a NaN or inf at a trial step is the line search's to handle (it shrinks the step); the
    # parameters only ever take finite iterates, and step() returns the loss there
    step_policy: ClassVar[StepPolicy] = StepPolicy(closure=True, guards_trials=True)

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        caller = type(self).__name__
        check_finite_number("lr", defaults["lr"], caller=caller, positive=True)
        check_positive_int("max_iter", defaults["max_iter"], caller=caller)
        check_finite_number("tol", defaults["tol"], caller=caller, nonnegative=True)
        check_choice("line_search", defaults["line_search"], LINE_SEARCHES, caller=caller)
        if "memory_budget" in defaults:
            check_positive_int("memory_budget", defaults["memory_budget"], caller=caller)
        super().__init__(params, defaults)
        # the method of the last step() with the state dict it wrote and the options it ran
        # under: while both stand, the next step continues that object instead of rebuilding
        # it from the dict (about 70 µs for L-BFGS, paid by every batch of mini-batch L-BFGS)
        self._live: tuple[directions.Method, Any, dict[str, Any]] | None = None

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's, refusing a group whose options differ from the first group's (see the
        module docstring): per-group options would otherwise be silently ignored."""
        super().add_param_group(param_group)
        first, added = _options(self.param_groups[0]), _options(self.param_groups[-1])
        if added != first:
            self.param_groups.pop()
            raise InvalidParameterError(
                f"{type(self).__name__}.add_param_group: every param group must share its options "
                "with the first (the method treats all parameters as one vector); "
                f"got {_differences(first, added)}."
            )
        for p in self.param_groups[-1]["params"]:
            if not torch.is_floating_point(p):
                self.param_groups.pop()
                raise InvalidParameterError(
                    f"{type(self).__name__}: parameters must be real floating-point tensors; "
                    f"got one of dtype {p.dtype} and shape {tuple(p.shape)}."
                )

    def _method(self) -> directions.Method:
        raise NotImplementedError

    @property
    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _state(self) -> dict[str, Any]:
        return self.state[self._params[0]]

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        """Run up to max_iter iterations; return the loss at the final parameters."""
        if closure is None:
            raise InvalidParameterError(
                f"{type(self).__name__}.step(closure) needs a closure that "
                "re-evaluates the model and returns the loss."
            )
        group = self.param_groups[0]
        params = [p for p in self._params if p.requires_grad]
        if not params:  # torch's contract: nothing to optimize, the closure's loss
            with torch.enable_grad():
                return closure()
        state = self._state()
        options = _options(group)
        numels = [p.numel() for p in params]
        if state.get("numels", numels) != numels:
            # the parameter vector changed (a group added, layers unfrozen): the curvature
            # memory describes the old vector; start afresh (counters are kept)
            for key in ("method", "memory"):
                state.pop(key, None)
            self._live = None
        state["numels"] = numels
        live = self._live
        if live is not None and live[1] is state.get("method") and live[2] == options:
            method = live[0]
        else:  # the first step, or after load_state_dict() or a change of options
            method = self._method()
            if "method" in state:
                method.load_state_dict(state["method"])
        memory = Memory(**state["memory"]) if "memory" in state else Memory()
        objective = ClosureObjective(params, closure, self.step_policy.closure_backward)
        solver = Solver(
            method,
            objective,
            tol=group["tol"],
            line_search=group["line_search"],
            lr=group["lr"],
            memory=memory,
        )
        start = solver.start(objective.flat_params())
        final, status, _ = solver.run(start, group["max_iter"])
        objective.load(final.x)
        for p, piece in zip(params, final.g.split(objective.numels), strict=True):
            p.grad = piece.view_as(p).to(p.dtype, copy=True)  # mixed dtypes: one flat dtype
        state["method"] = method.state_dict()
        self._live = (method, state["method"], options)
        state["memory"] = dataclasses.asdict(memory)
        state["status"] = status.name
        state["nfev"] = state.get("nfev", 0) + objective.nfev
        state["nhev"] = state.get("nhev", 0) + objective.nhev
        state["grad_norm"] = final.gnorm
        return final.at.f

    @property
    def status(self) -> Status | None:
        """How the last step() ended (CONVERGED, MAX_ITER, …), or None before any step."""
        name = self._state().get("status")
        return None if name is None else Status[name]


def _options(group: dict[str, Any]) -> dict[str, Any]:
    """A param group's options: everything but its parameters."""
    return {k: v for k, v in group.items() if k != "params"}


def _differences(first: dict[str, Any], other: dict[str, Any]) -> str:
    keys = sorted(set(first) | set(other))
    return ", ".join(
        f"{k}={other.get(k)!r} (first group: {first.get(k)!r})"
        for k in keys
        if first.get(k) != other.get(k)
    )


def _defaults(
    lr: float, max_iter: int, tol: float, line_search: str, **extra: Any
) -> dict[str, Any]:
    return {"lr": lr, "max_iter": max_iter, "tol": tol, "line_search": line_search, **extra}


class LBFGS(_SecondOrder):
    """L-BFGS (compact representation; see :class:`dlopt.optim.lbfgs.LBFGS`).

    Memory: 2·history_size·n numbers. ``tol`` bounds ‖∇f‖∞ (defaults converge without tuning:
    one ``step`` runs up to 100 iterations).

    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    >>> optimizer = LBFGS([w])
    >>> def closure():
    ...     optimizer.zero_grad()
    ...     loss = ((w - 2) ** 2).sum()
    ...     loss.backward()
    ...     return loss
    >>> float(optimizer.step(closure)) < 1e-12, optimizer.status.name
    (True, 'CONVERGED')
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        *,
        history_size: int = 10,
        max_iter: int = 100,
        tol: float = 1e-7,
        line_search: str = "strong_wolfe",
    ) -> None:
        check_positive_int("history_size", history_size, caller="LBFGS")
        super().__init__(
            params, _defaults(lr, max_iter, tol, line_search, history_size=history_size)
        )

    def _method(self) -> directions.Method:
        return lbfgs.LBFGS(self.param_groups[0]["history_size"])


class _Dense(_SecondOrder):
    """A method that holds an n×n matrix: refused above `memory_budget` bytes."""

    _dense: ClassVar[tuple[str, str]]

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        *,
        max_iter: int = 100,
        tol: float = 1e-7,
        line_search: str = "strong_wolfe",
        memory_budget: int = DENSE_MEMORY_BUDGET,
    ) -> None:
        super().__init__(
            params, _defaults(lr, max_iter, tol, line_search, memory_budget=memory_budget)
        )
        n = sum(p.numel() for p in self._params)
        caller, method = self._dense
        check_dense_memory(caller, n, self._params[0].element_size(), memory_budget, method)


class BFGS(_Dense):
    """Dense BFGS (see :class:`dlopt.optim.directions.BFGS`); refuses n² above `memory_budget`."""

    _dense = ("bfgs", "BFGS")  # (caller, method) named when n² is over the memory budget

    def _method(self) -> directions.Method:
        return directions.BFGS()


class NonlinearCG(_SecondOrder):
    """Nonlinear CG; ``beta`` is "pr+" (default), "pr", "fr" or "hs"."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        *,
        beta: str = "pr+",
        max_iter: int = 100,
        tol: float = 1e-7,
        line_search: str = "strong_wolfe",
    ) -> None:
        check_choice(
            "beta", beta, dict.fromkeys(directions.NonlinearCG.BETAS), caller="NonlinearCG"
        )
        super().__init__(params, _defaults(lr, max_iter, tol, line_search, beta=beta))

    def _method(self) -> directions.Method:
        return directions.NonlinearCG(self.param_groups[0]["beta"])


class NewtonCG(_SecondOrder):
    """Hessian-free Newton (see :class:`dlopt.optim.newton.NewtonCG`); closure without backward.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    >>> optimizer = NewtonCG([w])
    >>> def closure():  # no backward(): Newton-CG differentiates the loss twice itself
    ...     return ((w - 1) ** 4).sum() + (w**2).sum()
    >>> loss = optimizer.step(closure)
    >>> optimizer.status.name, round(w.detach()[0].item(), 4)
    ('CONVERGED', 0.4102)
    """

    step_policy = StepPolicy(closure=True, closure_backward=False, guards_trials=True)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        *,
        max_cg: int = 0,
        max_iter: int = 100,
        tol: float = 1e-7,
        line_search: str = "strong_wolfe",
    ) -> None:
        check_positive_int("max_cg", max_cg, caller="NewtonCG", minimum=0)
        super().__init__(params, _defaults(lr, max_iter, tol, line_search, max_cg=max_cg))

    def _method(self) -> directions.Method:
        return newton.NewtonCG(self.param_groups[0]["max_cg"])


class Newton(_Dense):
    """Newton with the exact, damped Hessian (small n); closure without backward. Refuses an
    n×n Hessian above `memory_budget` bytes (Newton-CG needs none)."""

    step_policy = StepPolicy(closure=True, closure_backward=False, guards_trials=True)

    _dense = ("newton", "Newton")

    def _method(self) -> directions.Method:
        return newton.Newton()
