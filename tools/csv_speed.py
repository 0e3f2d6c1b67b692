"""Time dlopt's CSV reader against ``np.loadtxt`` on a generated numeric file (one thread).

    OMP_NUM_THREADS=1 python tools/csv_speed.py [--rows 300000] [--repeats 5] [--path FILE]

Writes a CSV with a header row and `rows` × 11 random values (about 40 MB at the default; kept
at `--path` if given, else in a temp folder), then times ``read_csv_table`` and
``np.loadtxt(path, delimiter=",", skiprows=1)`` in turns (`repeats` each, interleaved in ABBA order, so load
changes and order hit both alike) and prints the best and median of each and their ratios.
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


def write_table(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.standard_normal((rows, 10)), rng.integers(0, 5, rows)])
    header = ",".join([*(f"x{i}" for i in range(10)), "label"])
    np.savetxt(path, values, delimiter=",", fmt="%.10g", header=header, comments="")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--path", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        path = args.path or Path(folder) / "numbers.csv"
        if not path.exists():
            write_table(path, args.rows)
        size = path.stat().st_size / 1e6
        ours: list[float] = []
        theirs: list[float] = []
        for k in range(args.repeats):
            for who in ("theirs", "ours") if k % 2 == 0 else ("ours", "theirs"):  # ABBA order
                start = time.perf_counter()
                if who == "theirs":
                    expected = np.loadtxt(path, delimiter=",", skiprows=1)
                    theirs.append(time.perf_counter() - start)
                else:
                    table = read_csv_table(path)
                    ours.append(time.perf_counter() - start)
        assert np.array_equal(table.features, expected[:, :-1])
        assert np.array_equal(table.labels, expected[:, -1])
    rows, cols = expected.shape
    print(f"{size:.1f} MB, {rows} rows x {cols} columns, {args.repeats} interleaved repeats")
    print(f"np.loadtxt       best {min(theirs):.3f} s  median {statistics.median(theirs):.3f} s")
    print(f"dlopt read_csv   best {min(ours):.3f} s  median {statistics.median(ours):.3f} s")
    best = min(theirs) / min(ours)
    median = statistics.median(theirs) / statistics.median(ours)
    print(f"speed vs np.loadtxt: best {best:.2f}x, median {median:.2f}x (> 1: dlopt is faster)")


if __name__ == "__main__":
    main()
