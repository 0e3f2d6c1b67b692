"""Print the standard-problem battery: every dlopt method against its SciPy counterpart on the
Moré–Garbow–Hillstrom problems (tests/optim/mgh.py) from their published starts.

Evaluations (f and ∇f together) are counted inside the objective for both. Run from the
repository root, threads pinned:

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
        print(f"{'problem':28} {'n':>4} {'ours':>6} {'scipy':>6} {'ratio':>6}  converged")
        ratios, missed = [], []
        for problem in MGH + LARGER:
            c = compare(problem, method)
            flag = f"{'ours' if c.ours_converged else '----'}/{'scipy' if c.theirs_converged else '-----'}"
            print(
                f"{problem.name:28} {problem.n:4d} {c.ours_nfev:6d} {c.theirs_nfev:6d} "
                f"{c.ratio:6.2f}  {flag}",
                flush=True,
            )
            if c.theirs_converged:
                ratios.append((c.ratio, problem.name))
                if not c.ours_converged:
                    missed.append(problem.name)
        worst = max(ratios)
        summary.append(
            (method, statistics.median(r for r, _ in ratios), worst, len(ratios), missed)
        )
    print(
        f"\n{'method':10} {'median':>7} {'worst':>24} {'problems':>8}  missed where scipy converged"
    )
    for method, median, (ratio, name), count, missed in summary:
        print(f"{method:10} {median:7.2f} {ratio:6.2f} {name:>17} {count:8d}  {missed or 'none'}")


if __name__ == "__main__":
    main(sys.argv[1:] or DEFAULT)
