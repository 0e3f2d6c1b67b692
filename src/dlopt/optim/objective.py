"""f, ∇f and curvature at a flat point x, by autograd — for a function or for a closure.

Every evaluation returns f and ∇f together. With ``create_graph=True`` it also returns the
curvature of that same graph: Hessian-vector products Hv = ∇(∇f·v) by double backward,
reusing the gradient's graph (≈ 1.2–1.7× an f+∇f per product, against 2–2.6× when rebuilt),
and the full Hessian as n such products batched (``is_grads_batched``).

Half precision (float16, bfloat16): the function runs in its own dtype, but x, f, ∇f and the
products the solver sees are float32 (``work_dtype``), so the line search and every direction
compute in float32 — in half, a step of 10⁵ or a β of 10⁵ cannot even be represented, and
‖r‖² underflows to 0 (both raised before). Sparse gradients (``nn.Embedding(sparse=True)``)
are densified, as torch.optim.LBFGS does: the methods work on one dense vector anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dlopt.errors import InvalidParameterError
from dlopt.optim.distributed import DistributedClosure


@dataclass(slots=True)
class Evaluation:
    f: Tensor  # 0-d, detached
    g: Tensor  # flat, detached
    hvp: Callable[[Tensor], Tensor] | None = None
    hessian: Callable[[], Tensor] | None = None
    # g's memory seen by numpy, made once (Solver.evaluate, on the host path): each
    # Tensor.numpy() costs about half a microsecond, and g is read by numpy up to four times
    g_host: np.ndarray | None = None


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the solver computes in: float32 for half precision, else `dtype`."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def check_loss(value: Tensor, caller: str) -> None:
    """A loss must be a floating scalar tensor with a graph: a detached loss (``.detach()``,
    ``.item()`` turned back into a tensor, or computed under ``torch.no_grad()``) has gradient
    zero everywhere, and dlopt would report it converged at x0."""
    if not torch.is_floating_point(value):
        raise InvalidParameterError(
            f"{caller} must return a floating-point scalar tensor; got dtype {value.dtype}."
        )
    if not value.requires_grad:
        raise InvalidParameterError(
            f"{caller} returned a tensor without a graph (detached, or computed under "
            "torch.no_grad()): there is no gradient to follow."
        )


class Objective:
    """Counts evaluations (`nfev`) and Hessian-vector products or Hessians (`nhev`)."""

    def __init__(self) -> None:
        self.nfev = 0
        self.nhev = 0

    def evaluate(self, x: Tensor, create_graph: bool = False) -> Evaluation:
        raise NotImplementedError

    def _curvature(
        self, graph: Callable[[], Tensor], inputs: Sequence[Tensor], n: int
    ) -> tuple[Callable[[Tensor], Tensor], Callable[[], Tensor]]:
        """Hv = ∇(∇f·v) and H for the flat gradient `graph()` (built with create_graph),
        fetched when a product is asked for."""

        def hvp(v: Tensor) -> Tensor:
            self.nhev += 1
            g_graph = graph()
            parts = torch.autograd.grad(
                g_graph, inputs, v.to(g_graph.dtype), retain_graph=True, allow_unused=True
            )
            return _flat(parts, inputs).to(v.dtype)  # half → the solver's float32

        def hessian() -> Tensor:
            self.nhev += 1
            g_graph = graph()
            eye = torch.eye(n, dtype=g_graph.dtype, device=g_graph.device)
            try:
                rows = torch.autograd.grad(
                    g_graph,
                    inputs,
                    eye,
                    retain_graph=True,
                    is_grads_batched=True,
                    allow_unused=True,
                )
            except (RuntimeError, NotImplementedError):
                # no batching rule for some backward (sparse embeddings): n products
                parts = [
                    torch.autograd.grad(g_graph, inputs, e, retain_graph=True, allow_unused=True)
                    for e in eye
                ]
                H = torch.stack([_flat(part, inputs) for part in parts])
            else:
                H = torch.cat(
                    [
                        (
                            r.to_dense()
                            if r is not None and r.is_sparse
                            else r
                            if r is not None
                            else torch.zeros(n, *p.shape, dtype=p.dtype, device=p.device)
                        ).reshape(n, -1)
                        for r, p in zip(rows, inputs, strict=True)
                    ],
                    dim=1,
                )
            H = H.to(work_dtype(H.dtype))
            return (H + H.T) / 2  # symmetric up to rounding

        return hvp, hessian


def _flat(parts: Sequence[Tensor | None], like: Sequence[Tensor]) -> Tensor:
    """One flat gradient; missing parts are zero, sparse ones densified."""
    return torch.cat(
        [
            (p if p is None or not p.is_sparse else p.to_dense()).reshape(-1)
            if p is not None
            else torch.zeros_like(q).reshape(-1)
            for p, q in zip(parts, like, strict=True)
        ]
    )


class FunctionObjective(Objective):
    """f(x) for ``minimize(fun, x0)``: x is viewed in x0's shape before each call."""

    def __init__(
        self, fun: Callable[[Tensor], Tensor], shape: torch.Size, dtype: torch.dtype | None = None
    ) -> None:
        super().__init__()
        self.fun, self.shape, self.dtype = fun, shape, dtype
        self._ones: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def evaluate(self, x: Tensor, create_graph: bool = False) -> Evaluation:
        self.nfev += 1
        x_ = x.detach()
        if self.dtype is not None and x_.dtype != self.dtype:  # float32 → half for fun
            x_ = x_.to(self.dtype)
        if x_.shape != self.shape:
            x_ = x_.view(self.shape)
        x_.requires_grad_(True)
        with torch.enable_grad():  # also under no_grad callers: the graph must exist
            f = self.fun(x_)
            if not isinstance(f, Tensor) or f.numel() != 1:
                raise InvalidParameterError(
                    "minimize(fun=...) must return a scalar tensor; got "
                    f"{type(f).__name__} of shape {getattr(f, 'shape', None)}."
                )
            check_loss(f, "minimize(fun=...)")
            if f.dim():
                f = f.reshape(())
            (g_graph,) = torch.autograd.grad(
                f, x_, self._one(f), create_graph=create_graph, allow_unused=True
            )
            if g_graph is None:
                g_graph = torch.zeros_like(x_)
            g_flat = g_graph if g_graph.dim() == 1 else g_graph.reshape(-1)
        # each skipped call above and below saves a microsecond or two per evaluation: at
        # small n the objective's own cost is of that order
        f, g = f.detach(), g_flat.detach() if create_graph else g_flat
        if g.dtype != x.dtype:  # half precision: the solver sees float32
            f, g = f.to(x.dtype), g.to(x.dtype)
        evaluation = Evaluation(f, g)
        if create_graph:
            if g_flat.requires_grad:
                evaluation.hvp, evaluation.hessian = self._curvature(
                    lambda: g_flat, [x_], x.numel()
                )
            else:  # f is linear (or constant) in x: H = 0
                evaluation.hvp = self._zero
                evaluation.hessian = lambda: self._zero_h(x)
        return evaluation

    def _one(self, f: Tensor) -> Tensor:
        """∂f/∂f = 1 for the backward pass, made once per dtype and device (one kernel fewer
        per evaluation; it matters on a GPU, where every launch counts)."""
        key = (f.dtype, f.device)
        if key not in self._ones:
            self._ones[key] = torch.ones((), dtype=f.dtype, device=f.device)
        return self._ones[key]

    def _zero(self, v: Tensor) -> Tensor:
        self.nhev += 1
        return torch.zeros_like(v)

    def _zero_h(self, x: Tensor) -> Tensor:
        self.nhev += 1
        return torch.zeros(x.numel(), x.numel(), dtype=x.dtype, device=x.device)


class ClosureObjective(Objective):
    """A torch.optim closure over `params`; x is copied into the parameters before each call.

    ``backward=True``: the closure calls ``loss.backward()`` itself (the torch convention).
    ``backward=False``: it returns the loss with its graph and dlopt differentiates it — needed
    for Hessian-vector products (Newton, Newton-CG).
    """

    def __init__(self, params: list[Tensor], closure: Callable[[], Tensor], backward: bool) -> None:
        super().__init__()
        self.params, self.closure, self.backward = params, closure, backward
        self.numels = [p.numel() for p in params]
        self._loaded: Tensor | None = None  # the x the parameters hold
        # over several processes (dlopt.optim.distributed): a closure that does not call
        # backward leaves f, ∇f and Hv to be summed over the ranks here, one all_reduce each
        self._reduce = _reducer(closure, backward)

    def flat_params(self) -> Tensor:
        flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        return flat.to(work_dtype(flat.dtype))

    @torch.no_grad()
    def load(self, x: Tensor) -> None:
        for p, piece in zip(self.params, x.split(self.numels), strict=True):
            p.copy_(piece.view_as(p))
        self._loaded = x

    def evaluate(self, x: Tensor, create_graph: bool = False) -> Evaluation:
        f, g = self._run(x, create_graph)
        evaluation = Evaluation(f.to(x.dtype), (g.detach() if create_graph else g).to(x.dtype))
        if self._reduce is not None:
            packed = self._reduce(torch.cat([evaluation.g, evaluation.f.reshape(1)]))
            evaluation.f, evaluation.g = packed[-1], packed[:-1]
        if create_graph:
            graph = [g]

            def graph_at_x() -> Tensor:
                # the graph holds the parameters, which later trial steps overwrite in place:
                # if they have moved on (the line search accepted an earlier trial), x is
                # loaded and the graph rebuilt, one more evaluation
                if self._loaded is not x:
                    graph[0] = self._run(x, create_graph=True)[1]
                return graph[0]

            evaluation.hvp, evaluation.hessian = self._curvature(graph_at_x, self.params, x.numel())
            if self._reduce is not None:
                evaluation.hvp, evaluation.hessian = _reduced(self._reduce, evaluation)
        return evaluation

    def _run(self, x: Tensor, create_graph: bool) -> tuple[Tensor, Tensor]:
        """x loaded, the closure run: (loss, flat gradient, with its graph if create_graph)."""
        self.nfev += 1
        self.load(x)
        with torch.enable_grad():
            loss = self.closure()
            if not isinstance(loss, Tensor):
                if isinstance(loss, bool) or not isinstance(loss, int | float):
                    raise InvalidParameterError(
                        "the closure must return the loss, a scalar tensor or a number; got "
                        f"{type(loss).__name__}."
                    )
                loss = torch.as_tensor(float(loss), dtype=x.dtype, device=x.device)
            elif loss.numel() != 1:
                raise InvalidParameterError(
                    "the closure must return the loss, a scalar tensor or a number; got a "
                    f"tensor of shape {tuple(loss.shape)}."
                )
            elif not torch.is_floating_point(loss):
                raise InvalidParameterError(
                    "the closure must return a floating-point loss; got a tensor of dtype "
                    f"{loss.dtype}."
                )
            if self.backward and not create_graph:
                accumulated = [p.grad for p in self.params]
                if all(grad is None for grad in accumulated):
                    raise InvalidParameterError(
                        "the closure left every parameter without a gradient: it must call "
                        "loss.backward() before returning the loss."
                    )
                return loss.detach().reshape(()), _flat(accumulated, self.params)
            if not loss.requires_grad:
                raise InvalidParameterError(
                    "this optimizer needs a closure that returns the loss with its graph, "
                    "without calling backward() (it differentiates the loss itself); got a "
                    "loss without a graph (detached, or computed under torch.no_grad())."
                )
            try:
                grads = torch.autograd.grad(
                    loss, self.params, create_graph=create_graph, allow_unused=True
                )
            except RuntimeError as exc:
                raise InvalidParameterError(
                    "this optimizer needs a closure that returns the loss without "
                    f"calling backward() ({str(exc).splitlines()[0]})"
                ) from None
            return loss.detach().reshape(()), _flat(grads, self.params)  # graph kept


def _reducer(closure: Callable[[], Tensor], backward: bool) -> Callable[[Tensor], Tensor] | None:
    """The all-reduce of a :class:`~dlopt.optim.distributed.DistributedClosure` that leaves
    differentiation to the objective; None for every other closure."""
    if isinstance(closure, DistributedClosure) and not (backward and closure.backward):
        return closure.reduce
    return None


def _reduced(
    reduce: Callable[[Tensor], Tensor], evaluation: Evaluation
) -> tuple[Callable[[Tensor], Tensor], Callable[[], Tensor]]:
    hvp, hessian = evaluation.hvp, evaluation.hessian
    assert hvp is not None and hessian is not None
    return (lambda v: reduce(hvp(v))), (lambda: reduce(hessian()))
