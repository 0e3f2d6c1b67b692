"""Newton-CG, dlopt's against SciPy's, on 24 small digits MLPs: evaluations, Hv products, time.

    .venv/bin/python tools/newton_cg_mlps.py      # about 5 minutes on one core

The bench's own MLP is one network; this checks that its Newton-CG figures hold across
activations (tanh, softplus, sigmoid), widths (16, 32) and seeds (0-3): float64, weight decay
1e-4, start N(0, 0.3²), both stopped at ‖∇f‖∞ ≤ 1e-5.
"""

from __future__ import annotations

import math
import statistics

import torch
import torch.nn.functional as F

from dlopt.benchmarks import optim as bench
from dlopt.data import load_bundled, split_dataset


def main() -> None:
    torch.set_num_threads(1)
    train = split_dataset(load_bundled("digits"), seed=0).train
    X, y = train.X.double(), train.y
    activations = {"tanh": torch.tanh, "softplus": F.softplus, "sigmoid": torch.sigmoid}
    ratios: dict[str, list[float]] = {"nfev": [], "nhev": [], "seconds": []}
    print(
        f"{'problem':14}{'ours nit nfev  nhev      s':>28}   | {'scipy nit nfev  nhev      s':>28}"
    )
    for act_name, act in activations.items():
        for seed in range(4):
            for hidden in (16, 32):
                mlp, size = bench.flat_mlp(X, y, hidden, act, weight_decay=1e-4)
                generator = torch.Generator().manual_seed(seed)
                w0 = torch.randn(size, generator=generator, dtype=torch.float64) * 0.3
                problem = bench.Problem(f"{act_name[:4]}-{hidden}-s{seed}", mlp, w0)
                ours = bench._ours(problem, "newton-cg")
                theirs = bench._scipy(problem, "Newton-CG")
                row = []
                for run in (ours, theirs):
                    flag = "" if run["ok"] else " (not converged)"
                    row.append(
                        f"{run['nit']:9d}{run['nfev']:5d}{run['nhev']:6d}{run['seconds']:7.2f}{flag}"
                    )
                print(f"{problem.name:14}{row[0]:>28}   | {row[1]:>28}", flush=True)
                for key in ratios:
                    ratios[key].append(ours[key] / theirs[key])
    for key, values in ratios.items():
        geomean = math.exp(statistics.fmean(math.log(v) for v in values))
        print(
            f"{key:8} dlopt/scipy: median {statistics.median(values):.2f}, "
            f"min {min(values):.2f}, max {max(values):.2f}, geometric mean {geomean:.2f}"
        )


if __name__ == "__main__":
    main()
