"""Progress of a search, in the style of the Trainer's (`dlopt.train.progress`): trial k/N,
the best value so far and how many trials were pruned. On a terminal a rich bar updated in
place, with one line per finished trial printed above it; elsewhere (a pipe, a log file, CI)
that one plain line per trial only.

k counts the settled trials of the whole study (complete or pruned), so a resumed search, or
one of several worker processes, shows the study's count rather than its own.
"""

from __future__ import annotations

import math
import sys
from typing import IO, Any

import optuna
from optuna.trial import FrozenTrial, TrialState


class SearchProgress:
    """An Optuna trial callback (``callbacks=[progress]``) that shows the search's progress.

    Args:
        total: The search's N (see :func:`dlopt.search.study.planned_trials`).
        monitor: The objective's name, shown beside its values.
        enabled: False shows nothing.
        bar: True/False forces the bar on or off; None (the default) shows it when `stream`
            is a terminal. Worker processes forked from one search print lines only.
        stream: Where to write; standard error by default, as the Trainer's bar.
    """

    def __init__(
        self,
        total: int,
        monitor: str,
        *,
        enabled: bool = True,
        bar: bool | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        self.total, self.monitor, self.enabled = total, monitor, enabled
        self.stream = stream
        self._want_bar = bar
        self._progress: Any = None
        self._task: Any = None

    def started(self, trial: optuna.Trial, name: str) -> None:
        """Call as a trial starts: the bar appears (at the study's count) and names it."""
        if not self.enabled:
            return
        if self._progress is None and self._bar():
            self._start_bar(trial.study)
        if self._progress is not None:
            self._progress.update(self._task, running=f"running {name}")

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not self.enabled:
            return
        done, pruned, best = _counts(study)
        line = f"search {done}/{self.total} · {_one(trial, self.monitor)} · {best}" + (
            f" · {pruned} pruned" if pruned else ""
        )
        if self._progress is not None:
            self._progress.console.print(f"{_one(trial, self.monitor)}", markup=False)
            self._progress.update(
                self._task,
                completed=done,
                running="",
                best=best + (f" · {pruned} pruned" if pruned else ""),
            )
        else:
            print(line, file=self._out(), flush=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _out(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stderr

    def _bar(self) -> bool:
        return self._out().isatty() if self._want_bar is None else self._want_bar

    def _start_bar(self, study: optuna.Study) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        done, pruned, best = _counts(study)
        self._progress = Progress(
            TextColumn("search trial"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[best]}  {task.fields[running]}"),
            console=Console(file=self._out()),
            transient=False,
        )
        self._task = self._progress.add_task(
            "",
            total=self.total,
            completed=done,
            best=best + (f" · {pruned} pruned" if pruned else ""),
            running="",
        )
        self._progress.start()


def _counts(study: optuna.Study) -> tuple[int, int, str]:
    """Settled trials, pruned trials, and the best value so far as text."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    name = (study.metric_names or ["value"])[0]
    if not complete:
        return len(trials), pruned, f"best {name} –"
    pick = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
    best = pick(complete, key=lambda t: float(t.value))  # type: ignore[arg-type]
    return len(trials), pruned, f"best {name} {_number(best.value)} (trial {best.number})"


def _one(trial: FrozenTrial, monitor: str) -> str:
    params = ", ".join(f"{k}={_number(v)}" for k, v in trial.params.items())
    outcome = (
        f"{monitor} {_number(trial.value)}"
        if trial.state == TrialState.COMPLETE
        else trial.state.name.lower()
        + (f" after epoch {trial.last_step}" if trial.last_step is not None else "")
    )
    return f"trial {trial.number}: {params} → {outcome}"


def _number(value: Any) -> str:
    if isinstance(value, float) and not isinstance(value, bool):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)
