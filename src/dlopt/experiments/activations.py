"""A4 — activations: vanishing gradients in deep sigmoid nets, and every activation compared.

Gradient norms are measured at PyTorch's default initialization on an MLP with 8 hidden layers
of 64 units (one training batch of 512), as the ratio ‖∇W₁‖/‖∇W_out‖ of the first to the last
weight layer; per seed the effect is how many decades more of it the worst ReLU-family
activation passes to layer 1 than sigmoid does. With the first seed every activation also
trains the same 2×128 MLP on digits and on MNIST-1D (curves and time per call reported).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dlopt._plots import colors, figure
from dlopt.data import load_bundled, split_dataset
from dlopt.experiments.data import data_splits
from dlopt.experiments.registry import Claim, Context, Measured, experiment
from dlopt.nn import activation, activation_names, measure, mlp, time_per_call
from dlopt.train import Trainer

RELU_FAMILY = ("relu", "leaky_relu", "prelu", "elu", "maxout")
DEEP = (64,) * 8


def gradient_ratio(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """‖∇W₁‖/‖∇W_out‖ of a fresh model on one batch: how much gradient reaches layer 1."""
    snapshot = measure(model, X, y, F.cross_entropy)
    return snapshot.grad_norm[0] / snapshot.grad_norm[-1]


def _curves(name: str, data: str, epochs: int, seed: int) -> list[float]:
    splits = split_dataset(load_bundled(data), seed=seed)
    torch.manual_seed(seed)
    model = mlp(splits.train.n_features, 10, (128, 128), activation=name)
    trainer = Trainer(
        model, torch.optim.Adam(model.parameters(), lr=1e-3), max_epochs=epochs, seed=seed
    )
    state = trainer.fit(splits.train, splits.test)
    return [h["val_accuracy"] for h in state.history]


PANELS = {
    "saturating and trivial": ("linear", "step", "sigmoid", "tanh"),
    "ReLU family": RELU_FAMILY,
    "modern": ("gelu", "silu", "mish", "softplus", "selu"),
}


@experiment(
    "A4",
    "Activations",
    [
        Claim(
            "A4",
            "The first layers of a deep sigmoid net receive vanishing gradients; the ReLU "
            "family does not",
            "log₁₀ ‖∇W₁‖/‖∇W_out‖: worst ReLU-family activation − sigmoid (decades)",
            1.0,
        )
    ],
)
def activation_claim(ctx: Context) -> Measured:
    splits = data_splits(ctx)
    X, y = splits.train.X[:512], splits.train.y[:512]
    n = splits.train.n_features
    ratios, profiles = {}, {}
    for name in ("sigmoid", "tanh", *RELU_FAMILY, "gelu", "silu", "selu", "softplus"):
        torch.manual_seed(ctx.derive(1))  # the same initial draw order for every activation
        model = mlp(n, 10, DEEP, activation=name)
        ratios[name] = gradient_ratio(model, X, y)
        profiles[name] = measure(model, X, y, F.cross_entropy).grad_norm
    worst_family = min(ratios[name] for name in RELU_FAMILY)
    effect = math.log10(worst_family) - math.log10(ratios["sigmoid"])
    numbers: dict[str, float | str] = {
        f"grad_ratio_first_to_last_{k}": v for k, v in ratios.items()
    }
    figures = {}
    if ctx.first:
        figures = {
            "Gradient norm per layer at initialization (8 hidden layers), and test accuracy "
            "per epoch for every activation, in three groups (first seed)": _plot(
                ctx, profiles, numbers
            )
        }
    return Measured({"A4": effect}, numbers, figures)


def _plot(ctx: Context, profiles: dict[str, list[float]], numbers: dict[str, float | str]) -> str:
    epochs = 5 if ctx.quick else 15
    fig, axes = figure(4, width=4.2, height=3.4)
    layers = range(1, len(DEEP) + 2)
    shown = ("sigmoid", "tanh", "relu", "elu", "gelu", "selu")
    for color, name in zip(colors(len(shown)), shown, strict=True):
        axes[0].semilogy(layers, profiles[name], marker="o", markersize=3, label=name, color=color)
    axes[0].set(
        xlabel="weight layer (1 = input side)",
        ylabel="‖∇W‖ at initialization",
        title="gradient per layer, 8 hidden layers",
    )
    axes[0].legend(fontsize=7)
    for ax, (title, names) in zip(axes[1:], PANELS.items(), strict=True):
        for color, name in zip(colors(len(names)), names, strict=True):
            for data, style in (("digits", "-"), ("mnist1d", "--")):
                curve = _curves(name, data, epochs, ctx.seed)
                numbers[f"{data}_final_accuracy_{name}"] = curve[-1]
                ax.plot(
                    range(1, len(curve) + 1),
                    curve,
                    style,
                    color=color,
                    label=name if data == "digits" else None,
                )
        ax.set(xlabel="epoch", ylabel="test accuracy (— digits, -- MNIST-1D)", title=title)
        ax.legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    for name in activation_names():
        if name not in ("swish", "maxout"):
            numbers[f"microseconds_per_call_{name}"] = 1e6 * time_per_call(
                activation(name), repeats=50
            )
    return ctx.save(fig, "activations")
