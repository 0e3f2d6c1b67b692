"""Augmentations in sequence, each drawing from the same generator."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from dlopt.errors import InvalidParameterError

Augmentation = Callable[[Tensor, torch.Generator | None], Tensor]


class Compose:
    """
    >>> import torch
    >>> from dlopt.augment import InputNoise, RandomCropFlip
    >>> aug = Compose([RandomCropFlip(1, shape=(1, 4, 4)), InputNoise(0.1)])
    >>> aug(torch.rand(3, 16), torch.Generator().manual_seed(0)).shape
    torch.Size([3, 16])
    """

    def __init__(self, augmentations: Sequence[Augmentation]) -> None:
        for a in augmentations:
            if not callable(a):
                raise InvalidParameterError(f"Compose: {a!r} is not callable as aug(x, generator).")
        self.augmentations = list(augmentations)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        for augmentation in self.augmentations:
            x = augmentation(x, generator)
        return x
