"""Model builders: MLPs and CNNs with activation by name, optional BatchNorm and dropout.

BatchNorm sits on the pre-activation, before τ (Ioffe & Szegedy 2015; SPEC B1), per node in an
MLP and per feature map in a CNN.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from dlopt._validation import check_fraction, check_positive_int
from dlopt.errors import InvalidParameterError
from dlopt.nn import activations as _act
from dlopt.nn.activations import LAYER_ACTIVATIONS, Maxout
from dlopt.nn.dropout import Dropout, DropoutMode, GaussianNoise


class Reshape(nn.Module):
    """View each sample as `shape` (e.g. a flat 1-D signal as one channel for Conv1d)."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return str(self.shape)


def _hidden_block(
    width_in: int,
    width: int,
    act: str,
    batch_norm: bool,
    dropout: float,
    pieces: int,
    dropout_mode: DropoutMode = "inverted",
    noise: float = 0.0,
) -> list[nn.Module]:
    if act in LAYER_ACTIVATIONS:
        layers: list[nn.Module] = [Maxout(width_in, width, pieces)]
        if batch_norm:
            raise InvalidParameterError(
                "mlp(activation='maxout', batch_norm=True) is not supported: the "
                "max comes after the pre-activation BN would normalize."
            )
    else:
        layers = [nn.Linear(width_in, width, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(_act.activation(act))
    if noise > 0:
        layers.append(GaussianNoise(noise))
    if dropout > 0:
        layers.append(Dropout(dropout, dropout_mode))
    return layers


def mlp(
    in_features: int,
    out_features: int,
    hidden: Sequence[int] = (128,),
    *,
    activation: str = "relu",
    batch_norm: bool = False,
    dropout: float = 0.0,
    input_dropout: float = 0.0,
    maxout_pieces: int = 2,
    dropout_mode: DropoutMode = "inverted",
    input_noise: float = 0.0,
    hidden_noise: float = 0.0,
) -> nn.Sequential:
    """Flatten → [noise, dropout on inputs] → (Linear → [BN] → τ → [noise] → [dropout]) → Linear.

    A Linear followed by BN has no bias: BN's β replaces it. Dropout follows `dropout_mode`
    ("inverted" or "classic", see :class:`dlopt.nn.Dropout`); the usual rates are
    ``input_dropout=P_INPUT`` (0.2) and ``dropout=P_HIDDEN`` (0.5). `input_noise` and
    `hidden_noise` add :class:`GaussianNoise` of that standard deviation while training.
    """
    check_positive_int("in_features", in_features, caller="mlp")
    check_positive_int("out_features", out_features, caller="mlp")
    for width in hidden:
        check_positive_int("hidden", width, caller="mlp")
    check_fraction("dropout", dropout, caller="mlp")
    check_fraction("input_dropout", input_dropout, caller="mlp")
    _act.check_activation_name(activation, caller="mlp")
    layers: list[nn.Module] = [nn.Flatten()]
    if input_noise > 0:
        layers.append(GaussianNoise(input_noise))
    if input_dropout > 0:
        layers.append(Dropout(input_dropout, dropout_mode))
    width_in = in_features
    for width in hidden:
        layers += _hidden_block(
            width_in,
            width,
            activation,
            batch_norm,
            dropout,
            maxout_pieces,
            dropout_mode,
            hidden_noise,
        )
        width_in = width
    layers.append(nn.Linear(width_in, out_features))
    return nn.Sequential(*layers)


def cnn(
    in_shape: Sequence[int],
    out_features: int,
    channels: Sequence[int] = (16, 32),
    *,
    kernel_size: int = 3,
    hidden: Sequence[int] = (64,),
    activation: str = "relu",
    batch_norm: bool = False,
    dropout: float = 0.0,
) -> nn.Sequential:
    """Conv blocks (Conv → [BN] → τ → MaxPool 2) then an MLP head.

    `in_shape` is (length,) for a 1-channel signal, (channels, length) for Conv1d or
    (channels, height, width) for Conv2d; flat inputs are reshaped to it.
    """
    shape = tuple(int(s) for s in in_shape)
    if not 1 <= len(shape) <= 3 or min(shape) < 1:
        raise InvalidParameterError(
            f"cnn(in_shape=...) must be (L,), (C, L) or (C, H, W); got {in_shape!r}."
        )
    if activation in LAYER_ACTIVATIONS:
        raise InvalidParameterError("cnn(activation='maxout') is not supported; use mlp().")
    _act.check_activation_name(activation, caller="cnn")
    shape = (1, *shape) if len(shape) == 1 else shape
    conv, norm, pool = (
        (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d)
        if len(shape) == 2
        else (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)
    )
    layers: list[nn.Module] = [Reshape(*shape)]
    c_in, spatial = shape[0], list(shape[1:])
    for c_out in channels:
        check_positive_int("channels", c_out, caller="cnn")
        layers.append(conv(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=not batch_norm))
        if batch_norm:
            layers.append(norm(c_out))
        layers.append(_act.activation(activation))
        if min(spatial) >= 2:
            layers.append(pool(2))
            spatial = [s // 2 for s in spatial]
        c_in = c_out
    flat = c_in
    for s in spatial:
        flat *= s
    head = mlp(flat, out_features, hidden, activation=activation, dropout=dropout)
    return nn.Sequential(*layers, *head)
