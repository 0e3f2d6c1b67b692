"""Losses by name and the metrics the trainer logs."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from dlopt._validation import check_choice, check_finite_number
from dlopt.errors import InvalidParameterError
from dlopt.nn.losses import cross_entropy

LossFn = Callable[[Tensor, Tensor], Tensor]


def mse_loss(output: Tensor, target: Tensor) -> Tensor:
    """Mean squared error; a (n, 1) output is compared with a (n,) target as a column."""
    if output.dim() == target.dim() + 1 and output.shape[-1] == 1:
        output = output.squeeze(-1)
    return F.mse_loss(output, target)


LOSSES: dict[str, LossFn] = {"cross_entropy": cross_entropy, "mse": mse_loss}


def resolve_loss(
    loss: str | LossFn, target: Tensor, label_smoothing: float = 0.0
) -> tuple[LossFn, bool]:
    """(loss function, is classification) — "auto" picks cross-entropy for integer targets;
    a `label_smoothing` ε > 0 smooths it (``F.cross_entropy(label_smoothing=ε)``)."""
    classification = not torch.is_floating_point(target)
    if callable(loss):
        return loss, classification
    if loss == "auto":
        loss = "cross_entropy" if classification else "mse"
    loss_fn = check_choice("loss", loss, LOSSES, caller="Trainer")
    if label_smoothing:
        if loss_fn is not cross_entropy:
            raise InvalidParameterError(
                "Trainer(label_smoothing=...) smooths the cross-entropy of class targets; "
                f"this run's loss is {loss!r} on {target.dtype} targets: got "
                f"label_smoothing={label_smoothing!r}."
            )
        loss_fn = functools.partial(cross_entropy, label_smoothing=label_smoothing)
    return loss_fn, classification


def check_label_smoothing(value: float, loss: str | LossFn) -> float:
    """`Trainer(label_smoothing=...)`: ε in [0, 1), for the built-in cross-entropy only."""
    smoothing = check_finite_number("label_smoothing", value, caller="Trainer", nonnegative=True)
    if smoothing >= 1 or (smoothing and callable(loss)):
        raise InvalidParameterError(
            "Trainer(label_smoothing=...) must lie in [0, 1) and smooths the built-in "
            f"cross-entropy only; got {value!r} with loss={loss!r}."
        )
    return smoothing


def accuracy(output: Tensor, target: Tensor) -> float:
    return float((output.argmax(-1) == target).double().mean())
