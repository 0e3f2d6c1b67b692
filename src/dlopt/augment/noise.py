"""Gaussian noise on the inputs as an augmentation (SPEC E4): x + σε, ε ~ N(0, I), drawn
afresh for every batch. (Noise on hidden nodes is the layer dlopt.nn.GaussianNoise.)"""

from __future__ import annotations

import torch
from torch import Tensor

from dlopt._validation import check_finite_number
from dlopt.errors import InvalidParameterError


class InputNoise:
    """
    >>> import torch
    >>> InputNoise(0.0)(torch.ones(2, 3)).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    def __init__(self, std: float) -> None:
        self.std = check_finite_number("std", std, caller="InputNoise", nonnegative=True)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not torch.is_floating_point(x):
            raise InvalidParameterError(
                f"InputNoise: inputs must be floating-point; got {x.dtype}."
            )
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + self.std * noise
