"""Time dlopt's CSV reader against ``np.loadtxt`` on a generated numeric file (one thread).

    OMP_NUM_THREADS=1 python tools/csv_speed.py [--rows 300000] [--repeats 3]

Writes a CSV of `rows` × 11 random values (about 43 MB at the default) into a temp folder and
prints the median time of each reader over `repeats` interleaved runs, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from dlopt.data.tables import read_csv_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.standard_normal((args.rows, 10)), rng.integers(0, 5, args.rows)])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "numbers.csv"
        np.savetxt(path, values, delimiter=",", fmt="%.10g")
        size = path.stat().st_size / 1e6
        ours, theirs = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            expected = np.loadtxt(path, delimiter=",")
            theirs.append(time.perf_counter() - start)
            start = time.perf_counter()
            table = read_csv_table(path)
            ours.append(time.perf_counter() - start)
        assert np.array_equal(table.features, expected[:, :-1])
        assert np.array_equal(table.labels, expected[:, -1])
    t_ours, t_theirs = statistics.median(ours), statistics.median(theirs)
    print(f"{size:.1f} MB, {args.rows} rows x 11 columns, median of {args.repeats}")
    print(f"np.loadtxt       {t_theirs:.3f} s")
    print(f"dlopt read_csv   {t_ours:.3f} s")
    print(f"ratio loadtxt/dlopt {t_theirs / t_ours:.2f} (> 1: dlopt is faster)")


if __name__ == "__main__":
    main()
