"""Pruning (SPEC H4): a trial whose learning curve falls behind stops early — early stopping
(D1) across trials. The Trainer reports `monitor` to the Optuna trial after every epoch; when
the study's pruner (``search(pruner="median")``: below the median of earlier trials at the same
epoch) says so, the run stops and the trial is recorded as pruned."""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna

from dlopt.train.callbacks import Callback, monitored

if TYPE_CHECKING:
    from dlopt.train.trainer import Trainer


class PruneTrial(Callback):
    """Pass to the Trainer inside a two-argument objective; call :meth:`raise_if_pruned`
    after ``fit`` so that the study records the trial as pruned.

    >>> def objective(params, trial):  # doctest: +SKIP
    ...     pruning = PruneTrial(trial)
    ...     trainer = Trainer(model, optimizer, callbacks=[pruning])
    ...     trainer.fit(train, val)
    ...     pruning.raise_if_pruned()
    ...     return trainer.state.metrics["val_loss"]
    """

    def __init__(self, trial: optuna.Trial, monitor: str = "val_loss") -> None:
        self.trial, self.monitor = trial, monitor
        self.pruned_at: int | None = None

    def on_epoch_end(self, trainer: Trainer) -> None:
        epoch = trainer.state.epoch
        self.trial.report(float(monitored(trainer, self.monitor, "PruneTrial")), epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            trainer.request_stop(f"pruned by the search after epoch {epoch}")

    def raise_if_pruned(self) -> None:
        if self.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned after epoch {self.pruned_at}")
