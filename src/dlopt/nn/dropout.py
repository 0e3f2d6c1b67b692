"""Dropout in both inference conventions, MC-dropout, and Gaussian noise layers (SPEC F1–F3, E4).

Dropout keeps each unit with probability 1 − p, with a fresh mask per sample (and per unit).

- ``mode="inverted"`` (PyTorch's): training output m·x/(1 − p), prediction x.
- ``mode="classic"`` (the notes'): training output m·x, prediction (1 − p)·x — the same as
  scaling the next layer's weights by (1 − p) at prediction.

Both give E[training output] = prediction output for the next layer up to the common factor
(1 − p), so the two trained networks compute the same function in expectation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlopt._validation import check_choice, check_fraction, check_positive_int
from dlopt.errors import InvalidParameterError

P_INPUT = 0.2  # the usual input-unit dropout rate (Srivastava et al. 2014)
P_HIDDEN = 0.5  # the usual hidden-unit dropout rate
DropoutMode = Literal["inverted", "classic"]
_MODES = {"inverted": "inverted", "classic": "classic"}


class Dropout(nn.Module):
    """Dropout with a choice of convention (see the module docstring)."""

    def __init__(self, p: float = P_HIDDEN, mode: DropoutMode = "inverted") -> None:
        super().__init__()
        self.p = check_fraction("p", p, caller="Dropout")
        self.mode = check_choice("mode", mode, _MODES, caller="Dropout")

    def forward(self, x: Tensor) -> Tensor:
        keep = 1.0 - self.p
        if not self.training:
            return x if self.mode == "inverted" else x * keep
        if self.p == 0:
            return x
        if self.mode == "inverted":
            return F.dropout(x, self.p, training=True)  # PyTorch's fused kernel
        return x * torch.empty_like(x).bernoulli_(keep)  # a fresh mask per sample and unit

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


class GaussianNoise(nn.Module):
    """x + N(0, std²) while training; identity at prediction (noise injection, SPEC E4)."""

    def __init__(self, std: float = 0.1) -> None:
        super().__init__()
        if not (math.isfinite(std) and std >= 0):
            raise InvalidParameterError(
                f"GaussianNoise(std=...) must be a finite number >= 0; got {std!r}."
            )
        self.std = std

    def forward(self, x: Tensor) -> Tensor:
        return x + self.std * torch.randn_like(x) if self.training and self.std > 0 else x

    def extra_repr(self) -> str:
        return f"std={self.std}"


def widen_for_dropout(hidden: Sequence[int], p_hidden: float = P_HIDDEN) -> list[int]:
    """Hidden widths divided by (1 − p): the same expected number of active units (F3)."""
    check_fraction("p_hidden", p_hidden, caller="widen_for_dropout")
    return [math.ceil(h / (1 - p_hidden)) for h in hidden]


# dropout layers: dlopt's and torch's (Dropout, Dropout1d/2d/3d, AlphaDropout, …)
DROPOUT_LAYERS = (Dropout, nn.modules.dropout._DropoutNd)


def noise_layers(model: nn.Module) -> list[str]:
    """The layers that draw fresh noise at every forward pass while training — dropout with
    p > 0, GaussianNoise with std > 0 — each as "layer NAME (TYPE, p=…)"."""
    noisy = []
    for name, module in model.named_modules():
        if isinstance(module, DROPOUT_LAYERS) and module.p > 0:
            noisy.append(f"layer {name} ({type(module).__name__}, p={module.p})")
        elif isinstance(module, GaussianNoise) and module.std > 0:
            noisy.append(f"layer {name} (GaussianNoise, std={module.std})")
    return noisy


@torch.no_grad()
def mc_dropout_predict(model: nn.Module, X: Tensor, samples: int = 50) -> Tensor:
    """Mean output over `samples` stochastic passes: dropout on, everything else in eval mode."""
    check_positive_int("samples", samples, caller="mc_dropout_predict")
    was_training = model.training
    model.eval()
    droppers = [m for m in model.modules() if isinstance(m, DROPOUT_LAYERS)]
    for m in droppers:
        m.train()
    try:
        return torch.stack([model(X) for _ in range(samples)]).mean(0)
    finally:
        model.train(was_training)
