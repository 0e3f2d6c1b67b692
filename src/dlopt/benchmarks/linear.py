"""`dlopt bench linear`: ridge, lasso and elastic net against scikit-learn on a 20000×500 problem.

Both sides solve the same objective (see :mod:`dlopt.regularize.linear` for the λ ↔ α
conversion) in float64 with an intercept; scikit-learn's coordinate descent runs at tol=1e-10
so that its answer is precise enough to compare with. Two penalties: λ = 2000 (a sparse
solution, 24 non-zero coefficients of 500) and λ = 50 (a dense one, 371 non-zero).
Reported: median wall time of each,
their ratio, and the largest coefficient difference.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch

from dlopt.benchmarks.harness import BenchReport, benchmark, interleave
from dlopt.regularize import elastic_net, lasso, ridge, sklearn_alpha

N, D, LAM, BETA = 20_000, 500, 2000.0, 0.5
LAM_DENSE = 50.0  # a dense solution: 371 of the 500 coefficients non-zero (24 at LAM)


def _discard(fit: Callable[[], object]) -> Callable[[], None]:
    """Time `fit` alone: interleave() treats a returned float as a self-measured time."""

    def run() -> None:
        fit()

    return run


@benchmark("linear", "ridge / lasso / elastic_net vs scikit-learn (20000×500, float64)")
def linear_benchmark(repeats: int, device: torch.device) -> BenchReport:
    from sklearn.linear_model import ElasticNet, Lasso, Ridge

    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, D))
    w = np.zeros(D)
    w[:25] = rng.normal(scale=2.0, size=25)
    y = X @ w + rng.normal(size=N) + 1.0
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    ours = {
        "ridge": lambda: ridge(Xt, yt, LAM, fit_intercept=True),
        "lasso": lambda: lasso(Xt, yt, LAM, fit_intercept=True),
        "elastic_net": lambda: elastic_net(Xt, yt, LAM, BETA, fit_intercept=True),
        "lasso dense": lambda: lasso(Xt, yt, LAM_DENSE, fit_intercept=True),
        "elastic_net dense": lambda: elastic_net(Xt, yt, LAM_DENSE, BETA, fit_intercept=True),
    }
    theirs = {
        "ridge": lambda: Ridge(**sklearn_alpha("ridge", LAM, N)).fit(X, y),
        "lasso": lambda: Lasso(**sklearn_alpha("lasso", LAM, N), tol=1e-10, max_iter=100_000).fit(
            X, y
        ),
        "elastic_net": lambda: ElasticNet(
            **sklearn_alpha("elastic_net", LAM, N, BETA), tol=1e-10, max_iter=100_000
        ).fit(X, y),
        "lasso dense": lambda: Lasso(
            **sklearn_alpha("lasso", LAM_DENSE, N), tol=1e-10, max_iter=100_000
        ).fit(X, y),
        "elastic_net dense": lambda: ElasticNet(
            **sklearn_alpha("elastic_net", LAM_DENSE, N, BETA), tol=1e-10, max_iter=100_000
        ).fit(X, y),
    }
    variants = {}
    for name in ours:
        variants[f"dlopt {name}"] = ours[name]
        variants[f"sklearn {name}"] = theirs[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's ConvergenceWarning at tight tolerances
        timings = interleave({k: _discard(f) for k, f in variants.items()}, repeats)
        notes = []
        for name in ours:
            a, b = ours[name](), theirs[name]()
            diff = float(np.abs(a.coef.numpy() - b.coef_).max())
            zeros = int((a.coef == 0).sum())
            notes.append(
                f"{name:<17} max |coef diff| {diff:.2e}   intercept diff "
                f"{abs(a.intercept - b.intercept_):.2e}   exact zeros {zeros}/{D}"
            )
    report = BenchReport(
        f"Penalized least squares, {N}×{D}, λ={LAM:g} (dense: λ={LAM_DENSE:g}), β={BETA}",
        "fit",
        timings,
        baseline="sklearn ridge",
        notes=notes,
    )
    for name in ours:
        report.notes.append(
            f"{name:<17} time ratio dlopt/sklearn "
            f"{report.ratio(f'dlopt {name}', f'sklearn {name}'):.3f}"
        )
    return report
