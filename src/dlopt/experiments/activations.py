"""A4 — activations: vanishing gradients in deep sigmoid nets, and every activation compared.

Gradient norms are measured at PyTorch's default initialization on an MLP with 8 hidden layers
of 64 units (digits, one batch of 512), as the ratio ‖∇W₁‖/‖∇W_out‖ of the first to the last
weight layer, geometric mean over 3 seeds. Then every activation trains the same 2×128 MLP
on digits and on MNIST-1D; saturation (|τ'(z)| < 1e-3), output mean and time per call are
reported for each.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dlopt._plots import colors, figure, save_figure
from dlopt.data import load_bundled, split_dataset
from dlopt.experiments.data import digits
from dlopt.experiments.registry import Context, Outcome, experiment
from dlopt.nn import activation, activation_names, measure, mlp, time_per_call
from dlopt.train import ActivationDiagnostics, Trainer

RELU_FAMILY = ("relu", "leaky_relu", "prelu", "elu", "maxout")
DEEP = (64,) * 8


def _gradient_ratio(
    name: str, X: torch.Tensor, y: torch.Tensor, seeds: int = 3
) -> tuple[float, list[float]]:
    logs, profile = [], []
    for seed in range(seeds):
        torch.manual_seed(seed)
        snapshot = measure(mlp(64, 10, DEEP, activation=name), X, y, F.cross_entropy)
        logs.append(math.log10(snapshot.grad_norm[0] / snapshot.grad_norm[-1]))
        profile = snapshot.grad_norm
    return 10 ** (sum(logs) / len(logs)), profile


def _curves(name: str, data: str, epochs: int, seed: int) -> tuple[list[float], dict[str, float]]:
    splits = split_dataset(load_bundled(data), seed=seed)
    torch.manual_seed(seed)
    model = mlp(splits.train.n_features, 10, (128, 128), activation=name)
    probe = ActivationDiagnostics(splits.train.X[:512], splits.train.y[:512])
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-3),
        max_epochs=epochs,
        callbacks=[probe],
        seed=seed,
    )
    state = trainer.fit(splits.train, splits.test)
    last = probe.history[-1]
    stats = {
        "saturation": sum(last.saturation) / max(len(last.saturation), 1),
        "output_mean": sum(last.output_mean) / max(len(last.output_mean), 1),
    }
    return [h["val_accuracy"] for h in state.history], stats


@experiment(
    "A4",
    "The first layers of a deep sigmoid net receive vanishing gradients; the ReLU family does not",
)
def activation_claim(ctx: Context) -> Outcome:
    splits = digits(ctx.seed)
    X, y = splits.train.X[:512], splits.train.y[:512]
    ratios, profiles = {}, {}
    for name in ("sigmoid", "tanh", *RELU_FAMILY, "gelu", "silu", "selu", "softplus"):
        ratios[name], profiles[name] = _gradient_ratio(name, X, y)
    vanishes = ratios["sigmoid"] <= 1e-3
    family_ok = all(ratios[name] >= 1e-2 for name in RELU_FAMILY)

    epochs = 8 if ctx.quick else 30
    names = [n for n in activation_names() if n != "swish"]  # swish is silu's alias
    curves: dict[str, dict[str, list[float]]] = {"digits": {}, "mnist1d": {}}
    stats: dict[str, dict[str, float]] = {}
    for data in curves:
        for name in names:
            curves[data][name], stats[f"{data}:{name}"] = _curves(name, data, epochs, ctx.seed)
    cost = {}
    for name in names:
        if name == "maxout":
            continue
        cost[name] = time_per_call(activation(name), repeats=50 if ctx.quick else 200)

    fig, axes = figure(3, width=5.0)
    layers = range(1, len(DEEP) + 2)
    for color, (name, profile) in zip(colors(len(profiles)), profiles.items(), strict=True):
        style = "-" if name in ("sigmoid", *RELU_FAMILY) else ":"
        axes[0].semilogy(layers, profile, style, marker="o", markersize=3, label=name, color=color)
    axes[0].set(
        xlabel="weight layer (1 = input side)",
        ylabel="‖∇W‖ at initialization",
        title="gradient norm per layer, 8 hidden layers",
    )
    axes[0].legend(fontsize=6, ncol=2)
    for ax, (data, by_name) in zip(axes[1:], curves.items(), strict=True):
        for color, (name, accuracy) in zip(colors(len(by_name)), by_name.items(), strict=True):
            ax.plot(range(1, len(accuracy) + 1), accuracy, label=name, color=color)
        ax.set(xlabel="epoch", ylabel="test accuracy", title=f"{data}, MLP 2×128, Adam")
        ax.legend(fontsize=6, ncol=2)
    for ax in axes:
        ax.grid(alpha=0.3)
    save_figure(fig, ctx.figure("activations"))

    numbers: dict[str, float | str] = {
        f"grad_ratio_first_to_last_{n}": r for n, r in ratios.items()
    }
    for data, by_name in curves.items():
        numbers.update({f"{data}_final_accuracy_{n}": acc[-1] for n, acc in by_name.items()})
    numbers.update({f"saturation_{k}": v["saturation"] for k, v in stats.items()})
    numbers.update({f"output_mean_{k}": v["output_mean"] for k, v in stats.items()})
    numbers.update({f"microseconds_per_call_{n}": t * 1e6 for n, t in cost.items()})
    family = ", ".join(f"{n} {ratios[n]:.1e}" for n in RELU_FAMILY)
    best = max(curves["mnist1d"], key=lambda n: curves["mnist1d"][n][-1])
    summary = (
        f"at default initialization, 8 hidden layers: ‖∇W₁‖/‖∇W_out‖ = "
        f"{ratios['sigmoid']:.1e} for sigmoid (needs ≤ 1e-3: {vanishes}) against "
        f"{family} for the ReLU family (each needs ≥ 1e-2: {family_ok}); tanh "
        f"{ratios['tanh']:.1e}. After {epochs} epochs the best activation on MNIST-1D is "
        f"{best} ({curves['mnist1d'][best][-1]:.3f}); step {curves['mnist1d']['step'][-1]:.3f} "
        f"and linear {curves['mnist1d']['linear'][-1]:.3f}."
    )
    return Outcome(
        vanishes and family_ok,
        summary,
        numbers,
        {
            "Gradient norm per layer at initialization, and test accuracy per epoch "
            "for every activation": ctx.figure("activations").name
        },
    )
