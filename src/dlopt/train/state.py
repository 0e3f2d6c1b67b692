"""Everything about a run lives in :class:`TrainState`, so callback signatures never grow."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainState:
    """Position and record of a run.

    `epoch` counts completed epochs; `batch` counts batches done in the epoch under way; `step`
    counts optimizer steps. `metrics` holds the last completed epoch's values; `history` one
    entry per completed epoch.
    """

    epoch: int = 0
    batch: int = 0
    step: int = 0
    max_epochs: int = 0
    batches_per_epoch: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    should_stop: bool = False
    stop_reason: str | None = None
    interrupted: int | None = None  # the signal number that asked the run to stop
    diverged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "history": [dict(h) for h in self.history],
            "stop_reason": self.stop_reason,
        }

    def load_dict(self, saved: dict[str, Any]) -> None:
        self.epoch, self.batch, self.step = (
            int(saved["epoch"]),
            int(saved["batch"]),
            int(saved["step"]),
        )
        self.history = [dict(h) for h in saved["history"]]
        self.metrics = dict(self.history[-1]) if self.history else {}
        self.stop_reason = saved["stop_reason"]

    def best(self, key: str, mode: str = "min") -> tuple[int, float]:
        """(epoch, value) of the best `key` in the history."""
        values = [(h["epoch"], h[key]) for h in self.history if key in h and math.isfinite(h[key])]
        if not values:
            return 0, math.nan
        pick = min if mode == "min" else max
        epoch, value = pick(values, key=lambda item: item[1])
        return int(epoch), value
