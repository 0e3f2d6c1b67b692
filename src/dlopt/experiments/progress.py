"""`dlopt reproduce`'s progress: which claim, which seed, elapsed and remaining."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

# Seconds one run of each experiment took in full mode (one thread, `--jobs 2`, 2026-12-02).
# Only the progress estimate reads them: runs differ 100-fold (C5 0.1 s, I8 14 s), so a
# remaining time from the mean run so far was 4x too short while the cheap groups ran.
RUN_SECONDS = {
    "A4": 1.1, "B2": 0.8, "B4": 6.5, "C1": 0.5, "C2": 0.3, "C5": 0.1, "C6": 1.0, "D1": 4.8,
    "E4": 1.0, "E6": 12.8, "F4": 4.0, "G5": 6.3, "H5": 1.3, "I1": 9.2, "I8": 14.4,
}  # fmt: skip


class _Progress:
    """Which claim, which seed, elapsed and remaining: a rich bar on a terminal, lines else.
    The remaining time weighs each run by its experiment's usual cost (RUN_SECONDS)."""

    def __init__(self, weights: Sequence[float], quiet: bool) -> None:
        self.total, self.done, self.quiet, self.start = len(weights), 0, quiet, time.perf_counter()
        self.total_weight, self.done_weight = float(sum(weights)), 0.0
        self.bar: Any = None
        if not quiet and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[runs]}"),
                TimeElapsedColumn(),
                TextColumn("remaining"),
                TimeRemainingColumn(),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(
                "reproduce", total=self.total_weight, runs=f"0/{self.total} runs"
            )

    def begin(self, text: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=text)

    def advance(self, text: str, weight: float) -> None:
        self.done += 1
        self.done_weight += weight
        if self.bar is not None:
            self.bar.update(
                self.task,
                advance=weight,
                description=f"{text} done",
                runs=f"{self.done}/{self.total} runs",
            )
        elif not self.quiet:
            elapsed = time.perf_counter() - self.start
            left = elapsed * (self.total_weight - self.done_weight) / max(self.done_weight, 1e-9)
            print(
                f"[{self.done}/{self.total}] {text} · {elapsed:.0f} s elapsed, ~{left:.0f} s left",
                file=sys.stderr,
                flush=True,
            )

    def say(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
