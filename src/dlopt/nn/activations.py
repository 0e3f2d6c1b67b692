"""Every activation of SPEC A1/A2 in one registry, selectable by name (SPEC A3).

Hidden units compute y = τ(z) with z = wᵀx + b. torch.nn provides most τ; written here are the
Heaviside step (zero gradient) and Maxout, max over k linear pieces, which is a layer (it owns
the weights of its pieces) rather than an element-wise function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from dlopt._validation import check_choice, check_positive_int
from dlopt.errors import InvalidParameterError


class Step(nn.Module):
    """Heaviside step τ(z) = 1[z > 0]. Its derivative is 0 almost everywhere: nothing learns."""

    def forward(self, z: Tensor) -> Tensor:
        return (z > 0).to(z.dtype) + 0 * z  # `+ 0*z` keeps the graph: gradients are exact zeros


class Maxout(nn.Module):
    """Maxout (Goodfellow et al. 2013): y_j = max_{i<k} (W_i x + b_i)_j, k linear pieces.

    A Linear producing k·out values; the max over the k pieces of each output unit.
    """

    def __init__(self, in_features: int, out_features: int, pieces: int = 2) -> None:
        super().__init__()
        self.pieces = check_positive_int("pieces", pieces, caller="Maxout")
        self.out_features = out_features
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: Tensor) -> Tensor:
        z = self.linear(x)  # (batch, out·k)
        return z.view(*z.shape[:-1], self.out_features, self.pieces).amax(-1)


class MaxoutConv(nn.Module):
    """Maxout over convolutions: a Conv with k·out channels, max over the k pieces per channel.

    Works for Conv1d and Conv2d (``dims``); padding keeps the spatial size ("same").
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        pieces: int = 2,
        *,
        dims: int = 2,
    ) -> None:
        super().__init__()
        self.pieces = check_positive_int("pieces", pieces, caller="MaxoutConv")
        self.out_channels = out_channels
        conv = {1: nn.Conv1d, 2: nn.Conv2d}.get(dims)
        if conv is None:
            raise InvalidParameterError(f"MaxoutConv(dims=...) must be 1 or 2; got {dims!r}.")
        self.conv = conv(in_channels, out_channels * pieces, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        z = self.conv(x)  # (batch, out·k, *spatial)
        return z.view(z.shape[0], self.out_channels, self.pieces, *z.shape[2:]).amax(2)


ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "linear": nn.Identity,
    "step": Step,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda negative_slope=0.01: nn.LeakyReLU(negative_slope),
    "prelu": lambda num_parameters=1, init=0.25: nn.PReLU(num_parameters, init),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "mish": nn.Mish,
    "softplus": nn.Softplus,
    "selu": nn.SELU,
}
LAYER_ACTIVATIONS = ("maxout",)  # activations that replace the Linear before them


def activation(name: str, **options: Any) -> nn.Module:
    """A fresh activation module by name; `options` go to its constructor.

    >>> activation("leaky_relu", negative_slope=0.01)
    LeakyReLU(negative_slope=0.01)
    """
    if name in LAYER_ACTIVATIONS:
        raise InvalidParameterError(
            f"activation({name!r}) is a layer: use Maxout(in_features, out_features, "
            "pieces) or mlp(..., activation='maxout')."
        )
    factory = check_choice("name", name, ACTIVATIONS, caller="activation")
    return factory(**options)


def activation_names() -> list[str]:
    return sorted([*ACTIVATIONS, *LAYER_ACTIVATIONS])


def check_activation_name(name: str, *, caller: str) -> None:
    """Raise the registry's ValueError (with the known names) for an unknown name."""
    if name not in ACTIVATIONS and name not in LAYER_ACTIVATIONS:
        check_choice("activation", name, dict.fromkeys(activation_names()), caller=caller)
