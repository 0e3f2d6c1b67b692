"""Full-batch second-order steps over several processes: one all-reduce per evaluation.

N ranks, each holding one shard of a full batch, take exactly the steps one process takes on the
whole batch when every evaluation the solver sees is the global one: f = Σ_r w_r f_r and
∇f = Σ_r w_r ∇f_r with w_r = n_r / n (the shard's share of the batch), and for Newton-CG also
Hv = Σ_r w_r H_r v. :func:`distributed_closure` wraps a ``torch.optim`` closure so that this holds
and the optimizers' math stays as it is; every rank then sees the same numbers, so the line
search takes the same decisions everywhere and the parameters never drift apart.

Collectives: one ``all_reduce`` per closure evaluation (the gradient and the loss travel in one
flat buffer) and one per Hessian-vector product or Hessian; :attr:`DistributedClosure.collectives`
counts them. On each rank, after ``torch.distributed.init_process_group``::

    loss = optimizer.step(distributed_closure(optimizer, closure, weight=len(xb) / n))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from dlopt.optim.step_policy import step_policy


class DistributedClosure:
    """A closure whose loss, gradients and curvature are the weighted sums over the ranks.

    With a closure that calls ``backward()`` (LBFGS, BFGS, NonlinearCG, torch.optim.LBFGS),
    calling it reduces the loss and every ``.grad`` in one ``all_reduce`` and returns the global
    loss. With one that does not (NewtonCG, Newton: ``step_policy.closure_backward`` is False), the closure
    returns the local loss and :class:`dlopt.optim.objective.ClosureObjective` reduces what it
    differentiates through :meth:`reduce`.
    """

    def __init__(
        self,
        closure: Callable[[], Any],
        params: list[Tensor],
        *,
        backward: bool,
        weight: float,
        group: Any = None,
    ) -> None:
        self.closure, self.params, self.backward = closure, params, backward
        self.weight, self.group = weight, group
        self.collectives = 0

    def reduce(self, tensor: Tensor) -> Tensor:
        """Σ_r w_r · tensor_r, the same on every rank (one ``all_reduce``)."""
        out = tensor * self.weight
        dist.all_reduce(out, group=self.group)
        self.collectives += 1
        return out

    def __call__(self) -> Any:
        loss = self.closure()
        if not self.backward:
            return loss
        value = torch.as_tensor(loss).detach()
        grads = [p.grad for p in self.params]
        like = next((g for g in grads if g is not None), value)
        packed = torch.cat(
            [
                (g.to_dense() if g.is_sparse else g).reshape(-1).to(like.dtype)
                if g is not None
                else torch.zeros(p.numel(), dtype=like.dtype, device=like.device)
                for g, p in zip(grads, self.params, strict=True)
            ]
            + [value.reshape(1).to(like.device, like.dtype)]
        )
        packed = self.reduce(packed)
        offset = 0
        for p in self.params:
            n = p.numel()
            p.grad = packed[offset : offset + n].view_as(p).to(p.dtype)
            offset += n
        return packed[-1].to(value.dtype)


def distributed_closure(
    optimizer: torch.optim.Optimizer,
    closure: Callable[[], Any],
    *,
    weight: float | None = None,
    group: Any = None,
) -> DistributedClosure:
    """`closure` for ``optimizer.step`` on this rank's shard, made global (see the module doc).

    Args:
        optimizer: The optimizer that will call it: its parameters get the reduced gradients,
            and its :func:`~dlopt.optim.step_policy.step_policy` says whether the closure calls ``backward()``.
        closure: The usual closure, evaluated on this rank's shard (its loss a mean over it).
        weight: This shard's share n_r / n of the batch; default 1 / world size (equal shards).
        group: The process group (default: the world).

    Raises:
        RuntimeError: torch.distributed is not initialized.
    """
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "distributed_closure(...) needs torch.distributed initialized "
            "(torch.distributed.init_process_group); got none."
        )
    params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
    share = 1.0 / dist.get_world_size(group) if weight is None else float(weight)
    return DistributedClosure(
        closure,
        params,
        backward=step_policy(optimizer).closure_backward,
        weight=share,
        group=group,
    )
