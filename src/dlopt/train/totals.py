"""One epoch's running totals and the metrics logged at its end (SPEC J1).

The training loss of an epoch is the sample-weighted mean of its batch losses,
``Σ_b |b| · J_b / Σ_b |b|``. It is summed on the device (no host sync per step) or, where the
NaN guard has already read the loss as a float, on the host; the two sums are added at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from dlopt.errors import CheckpointError
from dlopt.regularize.penalties import sparsity

if TYPE_CHECKING:
    from dlopt.train.trainer import Trainer


@dataclass
class EpochTotals:
    """Σ|b|·J_b on the device (`loss_sum`) and on the host (`host`), correct predictions and
    the samples seen so far in the epoch. Saved in checkpoints (see :mod:`dlopt.train.resume`)."""

    loss_sum: Tensor
    correct: Tensor
    host: float = 0.0
    seen: int = 0

    @classmethod
    def zeros(cls, device: torch.device) -> EpochTotals:
        return cls(
            torch.zeros((), dtype=torch.float64, device=device),
            torch.zeros((), dtype=torch.int64, device=device),
        )

    def add(self, loss: Tensor | float, out: Tensor | None, target: Tensor) -> None:
        """Add one batch: its mean `loss` (a float when already on the host) and, for a
        classifier's outputs `out`, its correct predictions."""
        n = len(target)
        if isinstance(loss, Tensor):
            self.loss_sum.add_(loss.detach(), alpha=n)
        else:
            self.host += loss * n
        if out is not None:
            self.correct.add_((out.argmax(-1) == target).sum())
        self.seen += n

    def mean_loss(self) -> float:
        return (float(self.loss_sum) + self.host) / max(self.seen, 1)

    def accuracy(self) -> float:
        return float(self.correct) / max(self.seen, 1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "loss_sum": self.loss_sum.cpu(),
            "correct": self.correct.cpu(),
            "loss_sum_host": self.host,
            "seen": self.seen,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: torch.device) -> EpochTotals:
        """The totals a :meth:`state_dict` saved, on `device`; any key missing, or a sum of the
        wrong kind, raises (a CheckpointError for a shape or a sign)."""
        loss_sum = state["loss_sum"].to(device, torch.float64)
        correct = state["correct"].to(device, torch.int64)
        seen = int(state["seen"])
        if loss_sum.numel() != 1 or correct.numel() != 1 or seen < 0:
            raise CheckpointError("holds accumulators of the wrong shape or sign; refused")
        host = float(state["loss_sum_host"])
        return cls(loss_sum.reshape(()), correct.reshape(()), host, seen)


def epoch_metrics(trainer: Trainer, val: Any) -> dict[str, float]:
    """The row logged at the end of an epoch: epoch, loss (and accuracy), the penalties' value
    and the weights' sparsity, ``val_*`` from :meth:`Trainer.evaluate`, and the LR."""
    totals = trainer.totals
    metrics: dict[str, float] = {"epoch": float(trainer.state.epoch + 1)}
    metrics["loss"] = totals.mean_loss()
    if trainer._classification and trainer.train_metrics and not trainer._closure:
        metrics["accuracy"] = totals.accuracy()
    if trainer.penalties:
        with torch.no_grad():
            metrics["penalty"] = sum(float(p.value()) for p in trainer.penalties)
        unique = {id(p): p for pen in trainer.penalties for p in pen.parameters}
        metrics["sparsity"] = sparsity(unique.values())
    if val is not None:
        metrics.update({f"val_{k}": v for k, v in trainer.evaluate(val).items()})
    metrics["lr"] = float(trainer.optimizer.param_groups[0]["lr"])
    return metrics
