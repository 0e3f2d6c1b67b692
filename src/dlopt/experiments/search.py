"""H5 — four claims about hyper-parameter search, each measured at an equal budget.

1. Random beats grid when few hyper-parameters matter (Bergstra & Bengio 2012): f(x₁, x₂)
   depends on x₁ alone; 9 trials of a 3 × 3 grid try 3 values of x₁, 9 random trials try 9.
2. Log spacing beats linear spacing for the learning rate: an MLP trained by Adam, 6 learning
   rates from 1e-5 to 1 on a geometric grid against an evenly spaced one (five of whose six
   points lie in the top decade). (For SGD over 1e-6…10, whose good rates sit in the top
   decade themselves, linear spacing did as well or better: the claim is about rates whose
   good values span decades.)
3. Grid cost grows as q^m: the trials of a q = 3 grid in m = 1…6 dimensions, and the measured
   cost per trial (about constant), not a wall-clock ratio on a shared machine.
4. Coarse-to-fine beats one-shot random at an equal budget: 45 trials on a narrow 3-D bowl,
   3 rounds of 15 against 45 at once.
Claims 1 and 4 average the best value over a few searches per seed; each seed also draws where
the optimum lies.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import torch

from dlopt._plots import figure
from dlopt.experiments.data import data_splits
from dlopt.experiments.registry import Claim, Context, Measured, experiment
from dlopt.nn import mlp
from dlopt.search import Float, grid, search
from dlopt.train import Trainer


def _lr_loss(splits: Any, lr: float, seed: int) -> float:
    torch.manual_seed(seed)
    model = mlp(splits.train.n_features, 10, (32,))
    trainer = Trainer(
        model, torch.optim.Adam(model.parameters(), lr=lr), max_epochs=5, nan_guard=False, seed=seed
    )
    trainer.fit(splits.train, splits.val)
    loss = trainer.evaluate(splits.val)["loss"]
    return min(loss, 10.0) if math.isfinite(loss) else 10.0  # diverged runs count as 10


@experiment(
    "H5",
    "Hyper-parameter search",
    [
        Claim(
            "H5.random-vs-grid",
            "Random search beats grid search when few hyper-parameters matter (9 trials, one "
            "of two parameters matters)",
            "log₁₀(grid's best / random's mean best)",
            0.1,
        ),
        Claim(
            "H5.log-scale",
            "Log spacing beats linear spacing for the learning rate (Adam, 6 rates in 1e-5…1)",
            "best validation loss, linear spacing − log spacing",
            0.05,
        ),
        Claim(
            "H5.grid-cost",
            "Grid search costs q^m trials: it grows exponentially with the number of "
            "hyper-parameters (q = 3, m = 1…6)",
            "largest |trials − 3^m| over m = 1…6",
            0.5,
            direction="less",
            kind="identity",
        ),
        Claim(
            "H5.coarse-to-fine",
            "Coarse-to-fine beats one-shot random search at an equal budget (45 trials, a "
            "narrow 3-D bowl)",
            "log₁₀(one-shot random's mean best / coarse-to-fine's)",
            0.1,
        ),
    ],
)
def search_claims(ctx: Context) -> Measured:
    repeats = 5 if ctx.quick else 8
    rng = torch.Generator().manual_seed(ctx.seed)
    target = float(torch.rand((), generator=rng))  # where the one parameter that matters peaks
    centre = torch.rand(3, generator=rng).mul(0.6).add(0.2).tolist()

    def one_matters(p: dict[str, Any]) -> float:
        return (p["x1"] - target) ** 2  # x2 plays no part

    def bowl(p: dict[str, Any]) -> float:
        return sum(((p[f"x{i}"] - c) / 0.05) ** 2 for i, c in enumerate(centre))

    square = {"x1": Float(0, 1), "x2": Float(0, 1)}
    grid_best = search(one_matters, square, strategy="grid", q=3).best_value
    random_best = statistics.fmean(
        search(one_matters, square, strategy="random", n_trials=9, seed=ctx.derive(s)).best_value
        for s in range(repeats)
    )

    splits = data_splits(ctx, train_size=300)
    losses = {
        name: {
            p["lr"]: _lr_loss(splits, p["lr"], ctx.derive(100))
            for p in grid({"lr": Float(1e-5, 1.0, log=name == "log")}, 6)
        }
        for name in ("log", "linear")
    }
    best = {k: min(v.values()) for k, v in losses.items()}

    counts, per_trial = [], []
    for m in range(1, 7):
        space = {f"x{i}": Float(0, 1) for i in range(m)}
        start = time.perf_counter()
        result = search(lambda p: sum(p.values()), space, strategy="grid", q=3)
        counts.append(len(result.trials))
        per_trial.append((time.perf_counter() - start) / len(result.trials))

    cube = {f"x{i}": Float(0, 1) for i in range(3)}
    one_shot = statistics.fmean(
        search(bowl, cube, strategy="random", n_trials=45, seed=ctx.derive(200 + s)).best_value
        for s in range(repeats)
    )
    refined = statistics.fmean(
        search(
            bowl, cube, strategy="coarse-to-fine", n_trials=45, rounds=3, seed=ctx.derive(300 + s)
        ).best_value
        for s in range(repeats)
    )
    effects = {
        "H5.random-vs-grid": math.log10(max(grid_best, 1e-12) / max(random_best, 1e-12)),
        "H5.log-scale": best["linear"] - best["log"],
        "H5.grid-cost": float(max(abs(c - 3**m) for m, c in enumerate(counts, 1))),
        "H5.coarse-to-fine": math.log10(max(one_shot, 1e-12) / max(refined, 1e-12)),
    }
    numbers: dict[str, Any] = {
        "H5.random-vs-grid:optimum_x1": target,
        "H5.random-vs-grid:grid_best": grid_best,
        "H5.random-vs-grid:random_mean_best": random_best,
        "H5.log-scale:log_spacing_best_loss": best["log"],
        "H5.log-scale:linear_spacing_best_loss": best["linear"],
        "H5.grid-cost:trials_m1_to_6": counts,
        "H5.grid-cost:milliseconds_per_trial_m1_to_6": [round(1e3 * t, 3) for t in per_trial],
        "H5.coarse-to-fine:random_45_mean_best": one_shot,
        "H5.coarse-to-fine:coarse_to_fine_45_mean_best": refined,
        "repeats_per_seed": repeats,
    }
    figures = {}
    if ctx.first:
        figures = {
            "Learning-rate spacing, and the grid's trials and cost per trial (first seed)": _plot(
                ctx, losses, counts, per_trial
            )
        }
    return Measured(effects, numbers, figures)


def _plot(
    ctx: Context, losses: dict[str, dict[float, float]], counts: list[int], per_trial: list[float]
) -> str:
    fig, axes = figure(2)
    for name, by_lr in losses.items():
        xs = sorted(by_lr)
        axes[0].plot(xs, [by_lr[x] for x in xs], "o-", label=f"{name} spacing")
    axes[0].set(xscale="log", xlabel="learning rate", ylabel="validation loss (capped at 10)")
    axes[0].legend(fontsize=7)
    ms = list(range(1, len(counts) + 1))
    axes[1].semilogy(ms, counts, "o-", label="trials (3^m)")
    axes[1].semilogy(ms, [t * 1e3 for t in per_trial], "s--", label="ms per trial")
    axes[1].set(xlabel="parameters m", ylabel="grid search cost")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    return ctx.save(fig, "search")
