"""One step of a closure-based optimizer (L-BFGS and dlopt's second-order methods) under the
trainer's NaN guard: the closure is evaluated as often as the optimizer's line search needs, and
a non-finite loss or parameter puts the parameters back as they were before the step."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from dlopt.nn.dropout import noise_layers
from dlopt.train.step import diverge, guard_finite, regularized

if TYPE_CHECKING:
    from dlopt.train.trainer import Trainer


def closure_step(trainer: Trainer, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor | None]:
    """Step `trainer.optimizer` on the batch; returns (loss, first evaluation's output)."""
    params = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    snapshot = [p.detach().clone() for p in params] if trainer.nan_guard else []
    first: list[Tensor] = []
    bad: list[Tensor] = []
    # dlopt's second-order methods reject a non-finite trial step themselves (their line
    # search shrinks it): only the loss and gradients where they stop are the guard's
    own_guard = trainer._policy.guards_trials
    backward = trainer._policy.closure_backward
    check_trials = trainer.nan_guard and not own_guard

    def closure() -> Any:  # torch.optim types closures as returning float
        trainer.optimizer.zero_grad(set_to_none=True)
        out = trainer.model(xb)
        loss = regularized(trainer, trainer._loss_fn(out, yb))
        if backward:
            loss.backward()
        if not first:
            first.append(out.detach())
        if check_trials and not bad and not guard_finite(trainer, loss):
            bad.append(loss.detach())
        return loss

    for penalty in trainer.penalties:
        penalty.before_step()
    if trainer.distributed is not None:  # distributed: f, ∇f (and Hv) summed over the ranks
        closure = trainer.distributed.closure(trainer.optimizer, closure)
    stepped = trainer.optimizer.step(closure)
    loss = stepped if isinstance(stepped, Tensor) else torch.tensor(float(stepped))
    if trainer.nan_guard and own_guard and not guard_finite(trainer, loss):
        bad.append(loss.detach())
    if trainer.nan_guard and (bad or not all(bool(p.isfinite().all()) for p in params)):
        with torch.no_grad():
            for p, saved in zip(params, snapshot, strict=True):
                p.copy_(saved)
        diverge(trainer, bad[0] if bad else torch.tensor(math.nan))
    return loss, (first[0] if first else None)


def warn_if_noisy(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """A line search over a model that draws fresh noise at every evaluation sees a different
    function each time: say so once, naming the noisy layers."""
    noisy = noise_layers(model)
    if noisy:
        logging.getLogger("dlopt").warning(
            "%s evaluates each batch several times along its line search, but %s draw "
            "fresh noise at every evaluation: the search sees a different function each "
            "time (expect short steps and failed searches); set the noise to 0 (in a "
            "config: [model] dropout = 0) or use a first-order optimizer",
            type(optimizer).__name__,
            ", ".join(noisy),
        )
