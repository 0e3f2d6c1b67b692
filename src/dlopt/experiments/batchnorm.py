"""B4, B1 and B2 — batch normalization's claims, one paired effect per seed.

B4: with BN an MLP is (init) less sensitive to the scale of its initial weights, (lr) trains
over a wider range of learning rates (SGD with momentum, 0.01…1), (deep-sigmoid) lets a
10-layer sigmoid net train at all, (regularizes) alone beats no regularization in an
overfitting regime (300 training samples, 20 % noisy labels, as in F4; dropout alone beside it),
and (gradient-flow) passes far more gradient to the first layer of a deep sigmoid net.
B1: BN before the activation (the notes' placement) against after it.
B2: whole-training-set statistics ("code 2") against PyTorch's exponential running averages.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dlopt._plots import figure
from dlopt.data import Batches, Splits
from dlopt.errors import TrainingDiverged
from dlopt.experiments.activations import gradient_ratio
from dlopt.experiments.data import data_splits
from dlopt.experiments.registry import Claim, Context, Measured, experiment
from dlopt.nn import mlp, recalibrate_batchnorm
from dlopt.train import Trainer

CHANCE = 0.1


@dataclass(frozen=True)
class RunResult:
    test: float  # test accuracy (chance when the run diverged)
    curve: list[float]  # validation accuracy per epoch
    diverged: bool


def _run(
    ctx: Context,
    splits: Splits,
    *,
    hidden: Sequence[int],
    batch_norm: bool = False,
    activation: str = "relu",
    lr: float = 0.05,
    init_scale: float = 1.0,
    dropout: float = 0.0,
    optimizer: str = "sgd",
    epochs: int | None = None,
    model: nn.Module | None = None,
) -> RunResult:
    """Train one MLP variant; a run whose loss diverged scores chance. Every variant of a seed
    starts from the same generator state (paired comparisons)."""
    torch.manual_seed(ctx.seed)
    if model is None:
        model = mlp(
            splits.train.n_features,
            10,
            hidden,
            activation=activation,
            batch_norm=batch_norm,
            dropout=dropout,
        )
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.mul_(init_scale)
    opt = (
        torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        if optimizer == "sgd"
        else torch.optim.Adam(model.parameters(), lr=lr)
    )
    trainer = Trainer(
        model, opt, max_epochs=epochs or (8 if ctx.quick else 12), batch_size=64, seed=ctx.seed
    )
    try:
        state = trainer.fit(splits.train, splits.val)
    except TrainingDiverged:
        return RunResult(CHANCE, [h["val_accuracy"] for h in trainer.state.history], True)
    return RunResult(
        trainer.evaluate(splits.test)["accuracy"], [h["val_accuracy"] for h in state.history], False
    )


def _post_activation(n_in: int, hidden: Sequence[int], n_out: int) -> nn.Sequential:
    """Linear → ReLU → BN blocks: BN after the activation, the placement the notes avoid."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.BatchNorm1d(h)]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, n_out))


def _deep_gradient_ratio(ctx: Context, X: torch.Tensor, y: torch.Tensor, bn: bool) -> float:
    torch.manual_seed(ctx.derive(7))
    model = mlp(X.shape[1], 10, DEEP_SIGMOID, activation="sigmoid", batch_norm=bn)
    return gradient_ratio(model, X, y)


DEEP_SIGMOID = (64,) * 10
SCALES = (0.1, 1.0, 10.0)
RATES = (0.01, 0.1, 1.0)


@experiment(
    "B4",
    "Batch normalization",
    [
        Claim(
            "B4.init",
            "With BN an MLP is less sensitive to the scale of its initial weights",
            "worst test accuracy over init scales ×0.1…×10, BN − no BN",
            0.05,
        ),
        Claim(
            "B4.lr",
            "With BN an MLP tolerates a much wider range of learning rates",
            "mean test accuracy over SGD+momentum rates 0.01…1, BN − no BN",
            0.05,
        ),
        Claim(
            "B4.deep-sigmoid",
            "A 10-layer sigmoid MLP trains with BN and not without",
            "test accuracy, BN − no BN (10 sigmoid layers, SGD+momentum)",
            0.3,
        ),
        Claim(
            "B4.regularizes",
            "BN regularizes: alone it beats no regularization in an overfitting regime "
            "(300 samples, 20 % noisy labels)",
            "test accuracy, BN alone − neither BN nor dropout",
            0.005,
        ),
        Claim(
            "B4.gradient-flow",
            "BN improves gradient flow: the first layer of a deep sigmoid net receives far "
            "more of the gradient with BN",
            "log₁₀ ‖∇W₁‖/‖∇W_out‖ at initialization, BN − no BN (decades)",
            1.0,
        ),
        Claim(
            "B1.placement",
            "BN on the pre-activation (before τ, as the notes place it) trains at least as "
            "well as BN after the activation",
            "test accuracy, BN before ReLU − BN after ReLU (non-inferiority)",
            -0.01,
        ),
    ],
)
def batchnorm_claim(ctx: Context) -> Measured:
    splits = data_splits(ctx)
    hidden = (128,) * 4
    by_scale = {
        bn: [_run(ctx, splits, hidden=hidden, batch_norm=bn, init_scale=s) for s in SCALES]
        for bn in (False, True)
    }
    by_rate = {
        bn: [_run(ctx, splits, hidden=hidden, batch_norm=bn, lr=r) for r in RATES]
        for bn in (False, True)
    }
    deep = {
        bn: _run(ctx, splits, hidden=DEEP_SIGMOID, batch_norm=bn, activation="sigmoid", lr=0.1)
        for bn in (False, True)
    }
    noisy = data_splits(ctx, train_size=300, label_noise=0.2)
    reg = {
        name: _run(
            ctx,
            noisy,
            hidden=(256, 256),
            lr=1e-3,
            optimizer="adam",
            epochs=40 if ctx.quick else 60,
            batch_norm=bn,
            dropout=p,
        ).test
        for name, bn, p in (
            ("neither", False, 0.0),
            ("BN alone", True, 0.0),
            ("dropout 0.5 alone", False, 0.5),
        )
    }
    X, y = splits.train.X[:512], splits.train.y[:512]
    flow = {bn: _deep_gradient_ratio(ctx, X, y, bn) for bn in (False, True)}
    after = _run(
        ctx,
        splits,
        hidden=(128, 128),
        model=_post_activation(splits.train.n_features, (128, 128), 10),
    )
    before = _run(ctx, splits, hidden=(128, 128), batch_norm=True)

    def acc(runs: list[RunResult]) -> list[float]:
        return [r.test for r in runs]

    effects = {
        "B4.init": min(acc(by_scale[True])) - min(acc(by_scale[False])),
        "B4.lr": statistics.fmean(acc(by_rate[True])) - statistics.fmean(acc(by_rate[False])),
        "B4.deep-sigmoid": deep[True].test - deep[False].test,
        "B4.regularizes": reg["BN alone"] - reg["neither"],
        "B4.gradient-flow": math.log10(flow[True]) - math.log10(flow[False]),
        "B1.placement": before.test - after.test,
    }
    numbers: dict[str, Any] = {}
    for bn in (False, True):
        tag = "bn" if bn else "plain"
        numbers.update(
            {
                f"B4.init:{tag}_init_x{s:g}": a
                for s, a in zip(SCALES, acc(by_scale[bn]), strict=True)
            }
        )
        numbers.update(
            {f"B4.lr:{tag}_lr{r:g}": a for r, a in zip(RATES, acc(by_rate[bn]), strict=True)}
        )
        numbers[f"B4.deep-sigmoid:{tag}_test_accuracy"] = deep[bn].test
        numbers[f"B4.gradient-flow:{tag}_grad_ratio"] = flow[bn]
    numbers.update({f"B4.regularizes:{k}": v for k, v in reg.items()})
    numbers.update({"B1.placement:before": before.test, "B1.placement:after": after.test})
    figures = {}
    if ctx.first:
        figures = {
            "BN vs no BN on the first seed: initial scale, learning rate, a deep "
            "sigmoid net": _plot(ctx, by_scale, by_rate, deep)
        }
    return Measured(effects, numbers, figures)


def _plot(
    ctx: Context,
    by_scale: dict[bool, list[RunResult]],
    by_rate: dict[bool, list[RunResult]],
    deep: dict[bool, RunResult],
) -> str:
    fig, axes = figure(3, width=4.2)
    for bn, style in ((False, "o-"), (True, "s-")):
        label = "with BN" if bn else "without BN"
        axes[0].semilogx(SCALES, [r.test for r in by_scale[bn]], style, label=label)
        axes[1].semilogx(RATES, [r.test for r in by_rate[bn]], style, label=label)
        axes[2].plot(range(1, len(deep[bn].curve) + 1), deep[bn].curve, style, label=label)
    axes[0].set(
        xlabel="initial weight scale (× default)",
        ylabel="test accuracy",
        title="4×128 ReLU, SGD+momentum",
    )
    axes[1].set(xlabel="learning rate", ylabel="test accuracy", title="4×128 ReLU, SGD+momentum")
    axes[2].set(xlabel="epoch", ylabel="validation accuracy", title="10-layer sigmoid MLP")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return ctx.save(fig, "batchnorm")


@experiment(
    "B2",
    "Post-training BN statistics",
    [
        Claim(
            "B2",
            "Whole-training-set BN statistics (code 2) are closer to the true population "
            "statistics than PyTorch's running averages",
            "mean over layers of log₁₀(error of the running average / error of code 2)",
            0.1,
        )
    ],
)
def population_statistics_claim(ctx: Context) -> Measured:
    splits = data_splits(ctx)
    torch.manual_seed(ctx.seed)
    model = mlp(splits.train.n_features, 10, (128, 128), batch_norm=True)
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        max_epochs=5 if ctx.quick else 10,
        batch_size=64,
        seed=ctx.seed,
    )
    trainer.fit(splits.train)
    layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]

    def snapshot() -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(m.running_mean.clone(), m.running_var.clone()) for m in layers]  # type: ignore[union-attr]

    def accuracy() -> float:
        return trainer.evaluate(splits.test)["accuracy"]

    batches = Batches(splits.train.X, splits.train.y, 64, seed=ctx.derive(1))
    running, acc_running = snapshot(), accuracy()
    recalibrate_batchnorm(model, (x for x, _ in batches.epoch(0)), mode="exact")
    exact, acc_exact = snapshot(), accuracy()
    recalibrate_batchnorm(model, (x for x, _ in batches.epoch(0)), mode="batch_average")
    averaged, acc_averaged = snapshot(), accuracy()

    def errors(estimate: list[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
        """Per layer: mean's RMS error in units of the true σ, then the variance's relative."""
        means = [
            float(((e[0] - t[0]) / t[1].sqrt()).pow(2).mean().sqrt())
            for e, t in zip(estimate, exact, strict=True)
        ]
        variances = [
            float((e[1] - t[1]).norm() / t[1].norm()) for e, t in zip(estimate, exact, strict=True)
        ]
        return means + variances

    e_running, e_code2 = errors(running), errors(averaged)
    effect = statistics.fmean(
        math.log10(r / max(c, 1e-300)) for r, c in zip(e_running, e_code2, strict=True)
    )
    numbers: dict[str, Any] = {
        "test_accuracy_running_average": acc_running,
        "test_accuracy_code2_batch_average": acc_averaged,
        "test_accuracy_exact_population": acc_exact,
    }
    n = len(layers)
    for i in range(n):
        numbers[f"layer{i + 1}_mean_error_running"] = e_running[i]
        numbers[f"layer{i + 1}_mean_error_code2"] = e_code2[i]
        numbers[f"layer{i + 1}_var_error_running"] = e_running[n + i]
        numbers[f"layer{i + 1}_var_error_code2"] = e_code2[n + i]
    figures = {}
    if ctx.first:
        fig, axes = figure(2)
        for ax, part, title in (
            (axes[0], slice(0, n), "mean"),
            (axes[1], slice(n, 2 * n), "variance"),
        ):
            x = range(1, n + 1)
            ax.bar([i - 0.2 for i in x], e_running[part], 0.4, label="running average (EMA)")
            ax.bar([i + 0.2 for i in x], e_code2[part], 0.4, label="code 2 (batch average)")
            ax.set(xlabel="BN layer", ylabel="error vs exact", title=title, yscale="log")
            ax.legend(fontsize=7)
        figures = {
            "Distance of each estimate from the exact statistics (first seed)": ctx.save(
                fig, "statistics"
            )
        }
    return Measured({"B2": effect}, numbers, figures)
