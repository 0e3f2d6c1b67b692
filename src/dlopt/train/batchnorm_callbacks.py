"""Callbacks for the chapter's diagnostics: activation statistics (A4) and BN code 2 (B2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from dlopt.data.batching import Batches
from dlopt.nn.diagnostics import Snapshot, measure
from dlopt.nn.normalization import recalibrate_batchnorm
from dlopt.train.callbacks import Callback

if TYPE_CHECKING:
    from dlopt.train.trainer import Trainer


class ActivationDiagnostics(Callback):
    """A :class:`~dlopt.nn.diagnostics.Snapshot` on a fixed batch before training and after
    every epoch: saturation share and mean output per activation layer, gradient norm per
    weight layer. Kept in ``history``; the parameters are never changed by a measurement."""

    def __init__(self, X: Tensor, y: Tensor) -> None:
        self.X, self.y = X, y
        self.history: list[Snapshot] = []

    def _record(self, trainer: Trainer) -> None:
        device, dtype = trainer._device_dtype()
        self.history.append(
            measure(trainer.model, self.X.to(device, dtype), self.y.to(device), trainer._loss_fn)
        )

    def on_fit_start(self, trainer: Trainer) -> None:
        if not self.history:
            self._record(trainer)

    def on_epoch_end(self, trainer: Trainer) -> None:
        self._record(trainer)


class RecalibrateBatchNorm(Callback):
    """At the end of training, replace BN running averages by whole-training-set statistics.

    See :func:`dlopt.nn.recalibrate_batchnorm`; `batches` is the training set in minibatches.
    """

    order = 50  # after early stopping restored its weights, before the final checkpoint

    def __init__(self, batches: Batches, mode: str = "batch_average") -> None:
        self.batches, self.mode = batches, mode

    def on_fit_end(self, trainer: Trainer) -> None:
        device, dtype = trainer._device_dtype()
        recalibrate_batchnorm(
            trainer.model,
            (xb.to(device, dtype) for xb, _ in self.batches.epoch(0)),
            mode=self.mode,
        )
