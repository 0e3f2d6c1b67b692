"""Child processes that end with their parent: reproduce's and search's workers."""

from __future__ import annotations

import os
import time


def die_with_parent(parent: int) -> None:
    """A worker ends when its parent process `parent` does, even if that one was SIGKILLed:
    Linux's PR_SET_PDEATHSIG, elsewhere a thread that watches the parent pid."""
    import signal
    import threading

    if os.getppid() != parent:  # it died while this worker was starting
        os._exit(1)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the parent died before the call
                os._exit(1)
            return
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
