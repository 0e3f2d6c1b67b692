"""Callbacks: hooks that see the whole run through ``trainer.state`` (STYLE.md).

Hooks: on_fit_start, on_epoch_start, on_batch_end, on_epoch_end, on_fit_end. Callbacks run in
list order, except that those with a higher `order` run later (Checkpoint saves after everyone
else has updated their state). None calls another; a callback stops the run with
``trainer.request_stop(reason)``.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from dlopt._io import write_text_atomic
from dlopt._validation import check_choice, check_finite_number, check_positive_int
from dlopt.errors import InvalidParameterError

if TYPE_CHECKING:
    from dlopt.train.trainer import Trainer


class Callback:
    """Base class: every hook is a no-op; override only the ones you need."""

    order = 0

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_epoch_start(self, trainer: Trainer) -> None: ...
    def on_batch_end(self, trainer: Trainer) -> None: ...
    def on_epoch_end(self, trainer: Trainer) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


_MODES = {"min": 1.0, "max": -1.0}


def monitored(trainer: Trainer, monitor: str, caller: str) -> float:
    """This epoch's value of the metric `monitor`, or an error naming what is logged."""
    metrics = trainer.state.metrics
    if monitor not in metrics:
        raise InvalidParameterError(
            f"{caller}(monitor=...) is {monitor!r}, which is not logged; logged: {sorted(metrics)}."
        )
    return metrics[monitor]


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs (SPEC D1).

    With `restore_best_weights` the model ends with the weights of its best epoch, however the
    run ends: patience, max_epochs, a non-finite loss or an interrupt.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        mode: str = "min",
        patience: int = 10,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
    ) -> None:
        self.monitor = monitor
        self.sign = check_choice("mode", mode, _MODES, caller="EarlyStopping")
        self.mode = mode
        self.patience = check_positive_int("patience", patience, caller="EarlyStopping")
        self.min_delta = abs(check_finite_number("min_delta", min_delta, caller="EarlyStopping"))
        self.restore_best_weights = restore_best_weights
        self.best = math.inf * self.sign
        self.best_epoch = 0
        self.wait = 0
        self.best_weights: dict[str, Tensor] | None = None
        self.stopped_epoch = 0

    def _improved(self, value: float) -> bool:
        return math.isfinite(value) and self.sign * (self.best - value) > self.min_delta

    def on_epoch_end(self, trainer: Trainer) -> None:
        value = monitored(trainer, self.monitor, "EarlyStopping")
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, trainer.state.epoch, 0
            if self.restore_best_weights:
                self.best_weights = {
                    k: v.detach().clone() for k, v in trainer.model.state_dict().items()
                }
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = trainer.state.epoch
                trainer.request_stop(
                    f"{self.monitor} has not improved for {self.patience} "
                    f"epochs; best {self.best:.4g} at epoch {self.best_epoch}."
                )

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.wait, self.stopped_epoch = int(state["wait"]), int(state["stopped_epoch"])
        weights = state["best_weights"]
        self.best_weights = None if weights is None else copy.copy(dict(weights))


class History(Callback):
    """Write the per-epoch history to `path`.csv and `path`.json after every epoch (atomically)."""

    def __init__(self, csv_path: str | Path, json_path: str | Path | None = None) -> None:
        self.csv_path = Path(csv_path)
        self.json_path = Path(json_path) if json_path else self.csv_path.with_suffix(".json")

    def on_epoch_end(self, trainer: Trainer) -> None:
        write_history(trainer.state.history, self.csv_path, self.json_path)


def write_history(history: list[dict[str, float]], csv_path: Path, json_path: Path) -> None:
    keys: list[str] = []
    for entry in history:
        keys += [k for k in entry if k not in keys]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(csv_path, buffer.getvalue())
    write_text_atomic(json_path, json.dumps(history, indent=1, allow_nan=True))
