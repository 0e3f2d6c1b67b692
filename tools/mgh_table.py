"""Print the standard-problem battery: every dlopt method against its SciPy counterpart on the
Moré–Garbow–Hillstrom problems (tests/optim/mgh.py) from their published starts.

Evaluations (f and ∇f together) are counted inside the objective for both. ``ratio`` is
dlopt's evaluations over scipy's; ``fair`` is the same at equal achieved accuracy: where scipy
stopped short — its gradient test passed at an f above dlopt's final one (by more than 0.1 %
+ 1e-10; ``tests.optim.mgh.stopped_short``) — dlopt's evaluations to first reach scipy's final
f, with the note ``scipy stopped short``. The summary gives the median of the plain ratios and
the worst fair ratio. Run from the repository root, threads pinned:

    OMP_NUM_THREADS=1 PYTHONPATH=src python tools/mgh_table.py [method ...]
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.optim.mgh import LARGER, MGH, SCIPY_METHOD, compare

DEFAULT = ["cg", "bfgs", "lbfgs", "newton-cg", "newton"]


def main(methods: list[str]) -> None:
    summary = []
    for method in methods:
        print(f"\n{method} vs scipy {SCIPY_METHOD[method]}")
        print(
            f"{'problem':28} {'n':>4} {'ours':>6} {'scipy':>6} {'ratio':>6} {'fair':>6}  converged"
        )
        ratios, fair, missed = [], [], []
        for problem in MGH + LARGER:
            c = compare(problem, method)
            flag = f"{'ours' if c.ours_converged else '----'}/{'scipy' if c.theirs_converged else '-----'}"
            note = ""
            if c.theirs_stopped_short:
                note = (
                    f"  scipy ended at a higher f = {c.theirs_f:.3g} (dlopt {c.ours_f:.3g}), "
                    f"reached by dlopt at evaluation {c.ours_nfev_at_theirs_f}"
                )
            print(
                f"{problem.name:28} {problem.n:4d} {c.ours_nfev:6d} {c.theirs_nfev:6d} "
                f"{c.ratio:6.2f} {c.fair_ratio:6.2f}  {flag}{note}",
                flush=True,
            )
            if c.theirs_converged:
                ratios.append(c.ratio)
                fair.append((c.fair_ratio, problem.name))
                if not c.ours_converged:
                    missed.append(problem.name)
        summary.append((method, statistics.median(ratios), max(fair), len(ratios), missed))
    print(
        f"\n{'method':10} {'median':>7} {'worst fair':>28} {'problems':>8}  "
        "missed where scipy converged"
    )
    for method, median, (ratio, name), count, missed in summary:
        print(f"{method:10} {median:7.2f} {ratio:6.2f} {name:>21} {count:8d}  {missed or 'none'}")


if __name__ == "__main__":
    main(sys.argv[1:] or DEFAULT)
