"""Images in, images out: a batch as (N, C, H, W), or flat rows (N, C·H·W) with their shape."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from dlopt.errors import InvalidParameterError


def as_images(x: Tensor, shape: Sequence[int] | None, caller: str) -> tuple[Tensor, Callable]:
    """(x as N × C × H × W, a function that puts a result back in x's layout). Other layouts
    (flat rows, N × H × W) need `shape` = (C, H, W) or (H, W); a 4-D batch needs none."""
    if not torch.is_floating_point(x):
        raise InvalidParameterError(
            f"{caller}: images must be a floating-point tensor; got {x.dtype}."
        )
    if shape is not None:
        dims = tuple(int(s) for s in shape)
        if len(dims) == 2:
            dims = (1, *dims)
        if len(dims) != 3 or min(dims) < 1:
            raise InvalidParameterError(
                f"{caller}(shape=...) must be (C, H, W) or (H, W); got {shape!r}."
            )
        if x.dim() == 4 and tuple(x.shape[1:]) == dims:
            return x, lambda y: y
        if x.dim() >= 2 and x.shape[1:].numel() == dims[0] * dims[1] * dims[2]:
            layout = x.shape  # flat rows, (N, H, W), …: viewed as images, given back as they came
            return x.reshape(len(x), *dims), lambda y: y.reshape(layout)
        raise InvalidParameterError(
            f"{caller}: a batch of shape {tuple(x.shape)} does not hold images of shape {dims}."
        )
    if x.dim() != 4:
        raise InvalidParameterError(
            f"{caller}: expected a batch N × C × H × W, or flat rows with shape=(C, H, W); got "
            f"shape {tuple(x.shape)}."
        )
    return x, lambda y: y


def uniform(
    n: int, low: float, high: float, like: Tensor, generator: torch.Generator | None
) -> Tensor:
    """n draws from U(low, high) on `like`'s device, in float32 (parameters, not pixels)."""
    u = torch.rand(n, generator=generator, device=like.device, dtype=torch.float32)
    return low + (high - low) * u


def coin(n: int, p: float, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """n booleans, each True with probability p."""
    return torch.rand(n, generator=generator, device=like.device) < p
