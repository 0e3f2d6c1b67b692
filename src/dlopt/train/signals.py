"""SIGINT and SIGTERM as a request to stop after the current step (a second one ends the
process at once)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def catching(record: Callable[[int], None], enabled: bool = True) -> Iterator[None]:
    """Inside the block, the first SIGINT or SIGTERM goes to `record` and a second one ends the
    process at once (only in the main thread, where Python can install handlers)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        record(signum)
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class SignalCatcher:
    """Records the first SIGINT or SIGTERM while :meth:`installed` is active; `caught` is its
    number, or None."""

    def __init__(self) -> None:
        self.caught: int | None = None

    def installed(self, enabled: bool) -> contextlib.AbstractContextManager[None]:
        """Catch the signals inside the block (see :func:`catching`)."""
        return catching(self._record, enabled)

    def _record(self, signum: int) -> None:
        self.caught = signum

    def name(self) -> str:
        return signal.Signals(self.caught).name if self.caught else "signal"
