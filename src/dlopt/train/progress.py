"""Progress of a run, as Keras `fit` and Lightning show it: on a terminal a rich bar over the
run's steps, refreshed within epochs; elsewhere (a pipe, a log file, CI) one plain line per
epoch. Either way, an early stop and the restoring of the best weights are said in one line
each, and the same events go to the ``dlopt.train`` logger.

`Trainer(progress=None)` (the default) shows progress unless a ``quiet_trainers()`` block is
active: dlopt's own experiments and benchmarks train many models inside one command.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import sys
import time
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from dlopt.train.callbacks import Callback, EarlyStopping

if TYPE_CHECKING:
    from dlopt.train.trainer import Trainer

log = logging.getLogger("dlopt.train")

_SHOW = contextvars.ContextVar("dlopt_trainer_progress", default=True)
REFRESH_S = 0.25  # the bar's refresh within an epoch: a long epoch never looks frozen
BAR_WIDTH = 24


@contextlib.contextmanager
def quiet_trainers() -> Iterator[None]:
    """Inside this block a Trainer built with `progress=None` shows no progress."""
    token = _SHOW.set(False)
    try:
        yield
    finally:
        _SHOW.reset(token)


def progress_by_default() -> bool:
    return _SHOW.get()


class ProgressBar(Callback):
    """Epoch k/N, the bar over steps with its ETA, and the monitored metric; plain lines when
    `stream` is not a terminal. `enabled=False` shows nothing."""

    order = 90  # before Checkpoint (100), after the callbacks that compute metrics

    def __init__(self, *, enabled: bool | None = None, stream: IO[str] | None = None) -> None:
        self.enabled = True if enabled is None else bool(enabled)
        self.stream = stream
        self._progress: Any = None
        self._task: Any = None
        self._last_refresh = 0.0
        self._epoch_start = 0.0
        self._fit_start = 0.0
        self._first_epoch = 0

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: Trainer) -> None:
        if not self.enabled:
            return
        state = trainer.state
        self._fit_start = self._epoch_start = time.perf_counter()
        self._first_epoch = state.epoch
        if not self._out().isatty():
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(bar_width=BAR_WIDTH),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=Console(file=self._out()),
            transient=False,
        )
        per_epoch = max(state.batches_per_epoch, 1)
        self._task = self._progress.add_task(
            "",
            total=per_epoch * state.max_epochs,
            completed=per_epoch * state.epoch + state.batch,
            epoch=min(state.epoch + 1, state.max_epochs),
            epochs=state.max_epochs,
        )
        self._progress.start()

    def on_epoch_start(self, trainer: Trainer) -> None:
        self._epoch_start = time.perf_counter()

    def on_batch_end(self, trainer: Trainer) -> None:
        if self._progress is None:
            return
        now = time.perf_counter()
        if now - self._last_refresh < REFRESH_S:
            return
        self._last_refresh = now
        state = trainer.state
        per_epoch = max(state.batches_per_epoch, 1)
        loss = trainer._last_loss
        description = f"batch loss {loss:.4g}" if math.isfinite(loss) else ""
        self._progress.update(
            self._task,
            completed=per_epoch * state.epoch + state.batch,
            epoch=state.epoch + 1,
            description=self._fit(self._metrics_text(trainer, description)),
        )

    def on_epoch_end(self, trainer: Trainer) -> None:
        if not self.enabled:
            return
        state = trainer.state
        shown = self._metrics_text(trainer, "")
        if self._progress is not None:
            per_epoch = max(state.batches_per_epoch, 1)
            self._progress.update(
                self._task,
                completed=per_epoch * state.epoch,
                epoch=state.epoch,
                description=self._fit(shown),
            )
            return
        now = time.perf_counter()
        done = state.epoch - self._first_epoch
        per_epoch_s = (now - self._fit_start) / max(done, 1)
        left = per_epoch_s * (state.max_epochs - state.epoch)
        print(
            f"epoch {state.epoch}/{state.max_epochs} · {shown} · {now - self._epoch_start:.1f} s"
            + (f", ~{left:.0f} s left" if state.epoch < state.max_epochs else ""),
            file=self._out(),
            flush=True,
        )

    def on_fit_end(self, trainer: Trainer) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        for line in events(trainer):
            log.info(line)
            if self.enabled:
                print(line, file=self._out(), flush=True)

    # ------------------------------------------------------------------ text
    def _out(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stderr

    def _fit(self, text: str) -> str:
        """`text` cut to the terminal's width left beside the epoch, bar and ETA (the monitored
        metric comes first), so a narrow terminal never loses the bar or the ETA."""
        assert self._progress is not None
        room = self._progress.console.width - (BAR_WIDTH + 24)
        return text if len(text) <= room else text[: max(room - 1, 0)] + "…"

    @staticmethod
    def _metrics_text(trainer: Trainer, first: str) -> str:
        metrics = trainer.state.metrics
        monitor = next(
            (cb.monitor for cb in trainer.callbacks if isinstance(cb, EarlyStopping)), None
        )
        keys = [k for k in metrics if k not in ("epoch", "lr")]
        if monitor in keys:  # the monitored metric first
            keys.remove(monitor)
            keys.insert(0, monitor)
        parts = [first] if first else []
        parts += [f"{k} {metrics[k]:.4g}" for k in keys]
        return "  ".join(parts)


def events(trainer: Trainer) -> list[str]:
    """What a user should be told when a run ends: why it stopped early, and whether the
    model now holds an earlier epoch's weights."""
    state = trainer.state
    lines = []
    stopping = [cb for cb in trainer.callbacks if isinstance(cb, EarlyStopping)]
    if state.stop_reason and not state.interrupted and not state.diverged:
        lines.append(f"stopped early after epoch {state.epoch}: {state.stop_reason}")
    for cb in stopping:
        if cb.restore_best_weights and cb.best_weights is not None and cb.best_epoch != state.epoch:
            lines.append(
                f"restored the best weights: epoch {cb.best_epoch} ({cb.monitor} {cb.best:.4g})"
            )
    return lines
