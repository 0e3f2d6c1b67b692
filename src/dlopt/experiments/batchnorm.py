"""B4 and B2 — batch normalization's claims, measured on digits.

B4: with BN an MLP is (a) less sensitive to the scale of its initial weights, (b) trains over a
wider range of learning rates (SGD with momentum, rates spanning 100×), (c) lets a 10-layer
sigmoid net train at all (test accuracy ≥ 5× chance with BN, < 2× chance without), and
(d) regularizes: in an overfitting regime (300 training samples, 20 % noisy labels, as in F4) BN
alone generalizes at least as well as no regularization and about as well as dropout alone; on
the full clean set, where nothing overfits, the same three are reported beside it.
B2: whole-training-set statistics ("code 2") against PyTorch's exponential running averages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from dlopt._plots import figure, save_figure
from dlopt.data import Batches, Splits
from dlopt.errors import TrainingDiverged
from dlopt.experiments.data import digits
from dlopt.experiments.registry import Context, Outcome, experiment
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
) -> RunResult:
    """Train one MLP variant; a run whose loss diverged scores chance."""
    torch.manual_seed(ctx.seed)
    model = mlp(64, 10, hidden, activation=activation, batch_norm=batch_norm, dropout=dropout)
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
        model, opt, max_epochs=epochs or (10 if ctx.quick else 30), batch_size=64, seed=ctx.seed
    )
    try:
        state = trainer.fit(splits.train, splits.val)
    except TrainingDiverged:
        return RunResult(CHANCE, [h["val_accuracy"] for h in trainer.state.history], True)
    return RunResult(
        trainer.evaluate(splits.test)["accuracy"], [h["val_accuracy"] for h in state.history], False
    )


def _first_epoch_reaching(curve: list[float], level: float) -> float:
    return next((i + 1 for i, v in enumerate(curve) if v >= level), math.inf)


@experiment(
    "B4",
    "Batch normalization: less sensitive to initialization, tolerates much larger "
    "learning rates, trains deep sigmoid nets, and regularizes",
)
def batchnorm_claim(ctx: Context) -> Outcome:
    splits = digits(ctx.seed)
    hidden = (128,) * 4
    scales = [0.1, 0.3, 1.0, 3.0, 10.0]
    rates = [0.01, 0.03, 0.1, 0.3, 1.0]
    by_scale = {
        bn: [_run(ctx, splits, hidden=hidden, batch_norm=bn, init_scale=s) for s in scales]
        for bn in (False, True)
    }
    by_rate = {
        bn: [_run(ctx, splits, hidden=hidden, batch_norm=bn, lr=r) for r in rates]
        for bn in (False, True)
    }
    deep = {
        bn: _run(ctx, splits, hidden=(64,) * 10, batch_norm=bn, activation="sigmoid", lr=0.1)
        for bn in (False, True)
    }

    def regularizers(data: Splits, epochs: int | None) -> dict[str, float]:
        def adam(batch_norm: bool, dropout: float) -> float:
            return _run(
                ctx,
                data,
                hidden=(256, 256),
                lr=1e-3,
                optimizer="adam",
                epochs=epochs,
                batch_norm=batch_norm,
                dropout=dropout,
            ).test

        return {
            "neither": adam(False, 0.0),
            "BN, no dropout": adam(True, 0.0),
            "dropout 0.5, no BN": adam(False, 0.5),
        }

    reg = regularizers(digits(ctx.seed, train_size=300, label_noise=0.2), 60 if ctx.quick else 150)
    clean = regularizers(splits, None)

    def accuracies(runs: list[RunResult]) -> list[float]:
        return [r.test for r in runs]

    good = 0.9
    init_ok = min(accuracies(by_scale[True])) >= good > min(accuracies(by_scale[False]))
    rate_ok = sum(a >= good for a in accuracies(by_rate[True])) > sum(
        a >= good for a in accuracies(by_rate[False])
    )
    best_plain = rates[max(range(len(rates)), key=lambda i: accuracies(by_rate[False])[i])]
    speed_plain = _first_epoch_reaching(by_rate[False][rates.index(best_plain)].curve, good)
    speed_bn = min(_first_epoch_reaching(r.curve, good) for r in by_rate[True])
    deep_ok = deep[True].test >= 5 * CHANCE and deep[False].test < 2 * CHANCE
    reg_ok = reg["BN, no dropout"] >= reg["dropout 0.5, no BN"] - 0.01 and (
        reg["BN, no dropout"] >= reg["neither"]
    )

    fig, axes = figure(4, width=4.2)
    for bn, style in ((False, "o-"), (True, "s-")):
        label = "with BN" if bn else "without BN"
        axes[0].semilogx(scales, accuracies(by_scale[bn]), style, label=label)
        axes[1].semilogx(rates, accuracies(by_rate[bn]), style, label=label)
        axes[2].plot(range(1, len(deep[bn].curve) + 1), deep[bn].curve, style, label=label)
    axes[0].set(
        xlabel="initial weight scale (× default)",
        ylabel="test accuracy",
        title="4×128 ReLU, SGD+momentum",
    )
    axes[1].set(xlabel="learning rate", ylabel="test accuracy", title="4×128 ReLU, SGD+momentum")
    axes[2].set(xlabel="epoch", ylabel="validation accuracy", title="10-layer sigmoid MLP")
    axes[3].bar(range(3), list(reg.values()), color=["grey", "tab:blue", "tab:orange"])
    axes[3].set_xticks(range(3), list(reg), fontsize=7, rotation=12)
    axes[3].set(
        ylim=(min(reg.values()) - 0.05, 1.0),
        ylabel="test accuracy",
        title="2×256, Adam, 20 % noisy labels",
    )
    for ax in axes[:3]:
        ax.axhline(good, color="grey", linestyle=":")
        ax.legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    save_figure(fig, ctx.figure("batchnorm"))

    numbers: dict[str, float | int | str] = {}
    for bn in (False, True):
        tag = "bn" if bn else "plain"
        numbers.update(
            {f"{tag}_init_x{s:g}": a for s, a in zip(scales, accuracies(by_scale[bn]), strict=True)}
        )
        numbers.update(
            {f"{tag}_lr{r:g}": a for r, a in zip(rates, accuracies(by_rate[bn]), strict=True)}
        )
        numbers[f"{tag}_deep_sigmoid"] = deep[bn].test
    numbers.update({"epochs_to_0.9_plain_best_lr": speed_plain, "epochs_to_0.9_bn_best": speed_bn})
    numbers.update({f"noisy_small_{k}": v for k, v in reg.items()})
    numbers.update({f"clean_full_{k}": v for k, v in clean.items()})
    summary = (
        f"initial scale ×0.1…×10: worst test accuracy {min(accuracies(by_scale[False])):.3f} "
        f"without BN vs {min(accuracies(by_scale[True])):.3f} with (BN ≥ 0.9 everywhere, plain "
        f"not: {init_ok}); learning rates 0.01…1 (100×): ≥ 0.9 at "
        f"{sum(a >= good for a in accuracies(by_rate[False]))}/5 rates without BN vs "
        f"{sum(a >= good for a in accuracies(by_rate[True]))}/5 with (more with BN: {rate_ok}); "
        f"epochs to 0.9 validation accuracy {speed_plain} (best plain rate {best_plain}) vs "
        f"{speed_bn} with BN; 10-layer sigmoid: {deep[False].test:.3f} without BN vs "
        f"{deep[True].test:.3f} with (BN ≥ 5× chance, plain < 2× chance: {deep_ok}); "
        f"regularization (Adam 2×256, 300 samples, 20 % noisy labels): neither "
        f"{reg['neither']:.3f}, BN alone {reg['BN, no dropout']:.3f}, dropout alone "
        f"{reg['dropout 0.5, no BN']:.3f} (BN alone ≥ neither and ≥ dropout alone − 0.01: "
        f"{reg_ok}); on the full clean set: neither {clean['neither']:.3f}, BN alone "
        f"{clean['BN, no dropout']:.3f}, dropout alone {clean['dropout 0.5, no BN']:.3f}."
    )
    return Outcome(
        init_ok and rate_ok and deep_ok and reg_ok,
        summary,
        numbers,
        {
            "BN vs no BN: initial scale, learning rate, a deep sigmoid net, and BN vs "
            "dropout": ctx.figure("batchnorm").name
        },
    )


@experiment(
    "B2",
    "Whole-training-set BN statistics (code 2) are closer to the true population "
    "statistics than PyTorch's running averages, and predict at least as well",
)
def population_statistics_claim(ctx: Context) -> Outcome:
    splits = digits(ctx.seed)
    torch.manual_seed(ctx.seed)
    model = mlp(64, 10, (128, 128), batch_norm=True)
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        max_epochs=5 if ctx.quick else 15,
        batch_size=64,
        seed=ctx.seed,
    )
    trainer.fit(splits.train)
    layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]

    def snapshot() -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(m.running_mean.clone(), m.running_var.clone()) for m in layers]  # type: ignore[union-attr]

    def accuracy() -> float:
        return trainer.evaluate(splits.test)["accuracy"]

    batches = Batches(splits.train.X, splits.train.y, 64, seed=ctx.seed)
    running, acc_running = snapshot(), accuracy()
    recalibrate_batchnorm(model, (x for x, _ in batches.epoch(0)), mode="exact")
    exact, acc_exact = snapshot(), accuracy()
    recalibrate_batchnorm(model, (x for x, _ in batches.epoch(0)), mode="batch_average")
    averaged, acc_averaged = snapshot(), accuracy()

    def error(estimate: list[tuple[torch.Tensor, torch.Tensor]], which: int) -> list[float]:
        """Means: RMS error in units of the true standard deviation; variances: relative."""
        if which == 0:
            return [
                float(((e[0] - t[0]) / t[1].sqrt()).pow(2).mean().sqrt())
                for e, t in zip(estimate, exact, strict=True)
            ]
        return [
            float((e[1] - t[1]).norm() / t[1].norm()) for e, t in zip(estimate, exact, strict=True)
        ]

    closer = all(
        a < r
        for a, r in zip(
            error(averaged, 0) + error(averaged, 1),
            error(running, 0) + error(running, 1),
            strict=True,
        )
    )
    predicts = acc_averaged >= acc_running - 0.005
    numbers: dict[str, float] = {
        "test_accuracy_running_average": acc_running,
        "test_accuracy_code2_batch_average": acc_averaged,
        "test_accuracy_exact_population": acc_exact,
    }
    for i in range(len(layers)):
        numbers[f"layer{i + 1}_mean_rel_error_running"] = error(running, 0)[i]
        numbers[f"layer{i + 1}_mean_rel_error_code2"] = error(averaged, 0)[i]
        numbers[f"layer{i + 1}_var_rel_error_running"] = error(running, 1)[i]
        numbers[f"layer{i + 1}_var_rel_error_code2"] = error(averaged, 1)[i]
    fig, axes = figure(2)
    for ax, which, title in ((axes[0], 0, "mean"), (axes[1], 1, "variance")):
        x = range(1, len(layers) + 1)
        ax.bar([i - 0.2 for i in x], error(running, which), 0.4, label="running average (EMA)")
        ax.bar([i + 0.2 for i in x], error(averaged, which), 0.4, label="code 2 (batch average)")
        ax.set(
            xlabel="BN layer",
            ylabel="error vs exact" + (" (in σ)" if which == 0 else " (relative)"),
            title=title,
            yscale="log",
        )
        ax.legend(fontsize=7)
    save_figure(fig, ctx.figure("statistics"))
    summary = (
        f"error of the BN statistics against the exact full-training-set values (means "
        f"in units of σ, variances relative): "
        f"running average {', '.join(f'{e:.2e}' for e in error(running, 0) + error(running, 1))}"
        f" vs code 2 {', '.join(f'{e:.2e}' for e in error(averaged, 0) + error(averaged, 1))}"
        f" (means then variances per layer; code 2 closer everywhere: {closer}); test "
        f"accuracy {acc_running:.4f} with running averages, {acc_averaged:.4f} with code 2, "
        f"{acc_exact:.4f} with exact statistics (code 2 ≥ running − 0.005: {predicts})."
    )
    return Outcome(
        closer and predicts,
        summary,
        numbers,
        {"Distance of each estimate from the exact statistics": ctx.figure("statistics").name},
    )
