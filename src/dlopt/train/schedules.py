"""Per-step LR schedules, built from torch's own schedulers: linear warm-up (``LinearLR``, then
the schedule that follows through ``SequentialLR``) and the one-cycle policy (``OneCycleLR``,
Smith & Topin 2017). Pass one to ``Trainer(scheduler=..., scheduler_interval="step")``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.optim.lr_scheduler import ConstantLR, LinearLR, LRScheduler, OneCycleLR, SequentialLR

from dlopt._validation import check_choice, check_positive_int
from dlopt.errors import InvalidParameterError

if TYPE_CHECKING:
    from dlopt.train.trainer import Trainer

INTERVALS = ("epoch", "step")


def check_interval(interval: str, scheduler: object) -> str:
    """`Trainer(scheduler_interval=...)`: "epoch", or "step" for a scheduler that needs no
    metric (ReduceLROnPlateau reads one epoch's)."""
    check_choice("scheduler_interval", interval, dict.fromkeys(INTERVALS), caller="Trainer")
    if interval == "step" and isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise InvalidParameterError(
            'Trainer(scheduler_interval="step") cannot step ReduceLROnPlateau, which reads an '
            "epoch's metric; got ReduceLROnPlateau."
        )
    return interval


def warmup(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    then: LRScheduler | None = None,
    *,
    start_factor: float = 0.01,
) -> SequentialLR:
    """LR rising linearly from ``start_factor·lr`` to ``lr`` over `warmup_steps` steps, then
    `then` (a constant LR when None), which starts counting when the warm-up ends.

    Build `then` on the same optimizer before calling: torch's schedulers read the LR at
    construction, and ``SequentialLR`` resets it to the warm-up's start.
    """
    check_positive_int("warmup_steps", warmup_steps, caller="warmup")
    if not 0 < start_factor <= 1:
        raise InvalidParameterError(
            f"warmup(start_factor=...) must lie in (0, 1]; got {start_factor!r}."
        )
    after = then if then is not None else ConstantLR(optimizer, factor=1.0, total_iters=0)
    rise = LinearLR(optimizer, start_factor, 1.0, total_iters=warmup_steps)
    return SequentialLR(optimizer, [rise, after], milestones=[warmup_steps])


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, **kwargs: Any
) -> SequentialLR:
    """:func:`warmup`, then cosine annealing to 0 over the remaining steps."""
    check_positive_int("total_steps", total_steps, caller="warmup_cosine")
    if total_steps <= warmup_steps:
        raise InvalidParameterError(
            f"warmup_cosine(total_steps=...) must exceed warmup_steps = {warmup_steps}; "
            f"got {total_steps!r}."
        )
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total_steps - warmup_steps)
    return warmup(optimizer, warmup_steps, cosine, **kwargs)


def one_cycle(
    optimizer: torch.optim.Optimizer, total_steps: int, *, pct_start: float = 0.3
) -> OneCycleLR:
    """One cycle peaking at each group's current LR after `pct_start` of `total_steps`
    (``OneCycleLR``'s cosine annealing, momentum cycled where the optimizer has one)."""
    check_positive_int("total_steps", total_steps, caller="one_cycle")
    if not 0 < pct_start < 1:
        raise InvalidParameterError(
            f"one_cycle(pct_start=...) must lie in (0, 1); got {pct_start!r}."
        )
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start)


def schedule_epoch(trainer: Trainer, metrics: dict[str, float]) -> None:
    """The Trainer's end-of-epoch LR step: SWA's once it has begun, else the epoch scheduler's
    (ReduceLROnPlateau on ``val_loss``, else ``loss``)."""
    scheduler = trainer.scheduler
    if trainer.swa is not None and trainer.swa.active(trainer.state.epoch):
        trainer.swa.epoch_end(trainer.model)
    elif scheduler is not None and trainer.scheduler_interval == "epoch":
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(metrics.get("val_loss", metrics["loss"]))
        else:
            scheduler.step()
