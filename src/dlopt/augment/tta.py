"""Test-time augmentation (SPEC E5): predict on several views of each input — the image, its
mirror, shifted crops — and average the predicted class probabilities, an ensemble of views."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from dlopt.augment.crop_flip import crop_flip

View = Callable[[Tensor], Tensor]


def flip_and_shift_views(shape: Sequence[int], shift: int = 1, flip: bool = True) -> list[View]:
    """The identity, then crops shifted by `shift` pixels in the four directions (zeros coming
    in), then the mirror of each if `flip`: 5 or 10 deterministic views."""
    offsets = [(shift, shift), (0, shift), (2 * shift, shift), (shift, 0), (shift, 2 * shift)]
    views: list[View] = []
    for mirror in (False, True) if flip else (False,):
        for row, col in offsets:
            views.append(_view(row, col, mirror, shift, tuple(shape)))
    return views


def _view(row: int, col: int, mirror: bool, padding: int, shape: tuple[int, ...]) -> View:
    def view(x: Tensor) -> Tensor:
        offsets = torch.tensor([row, col], device=x.device)
        flips = torch.tensor(mirror, device=x.device)
        return crop_flip(x, offsets, flips, padding=padding, shape=shape)

    return view


@torch.no_grad()
def tta_predict(model: nn.Module, x: Tensor, views: Sequence[View]) -> Tensor:
    """Mean of softmax(model(view(x))) over the views (eval mode; restored afterwards)."""
    if not views:
        raise ValueError("tta_predict(views=...) is empty: give at least one view.")
    was_training = model.training
    model.eval()
    try:
        return torch.stack([model(view(x)).softmax(-1) for view in views]).mean(0)
    finally:
        model.train(was_training)
