"""``dlopt train --nproc N``: torchrun's elastic agent on this host, N workers of dlopt."""

from __future__ import annotations

import signal
import sys

from dlopt.errors import EXIT_BUG


def launch(nproc: int, args: list[str]) -> int:
    """Run ``torchrun --standalone --nproc-per-node nproc -m dlopt.cli ARGS``; its exit code.

    A worker that fails makes the agent stop the others; the exit code is that of the first
    failed worker (143 when SIGTERM interrupted the run, 3 when it diverged, 128 + n when a
    worker died of signal n).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    torchrun = ["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0"]
    try:
        run(parse_args([*torchrun, "-m", "dlopt.cli", *args]))
    except ChildFailedError as exc:
        codes = [failure.exitcode for _, failure in sorted(exc.failures.items())]
        code = codes[0] if codes else EXIT_BUG
        if code < 0:  # killed by a signal
            code = 128 + (-code)
        if code == 128 + signal.SIGKILL:
            print(
                f"error: a worker was killed ({exc.get_first_failure()[1].message})",
                file=sys.stderr,
            )
        return code
    return 0
