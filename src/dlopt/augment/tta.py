"""Test-time augmentation (SPEC E5): predict on several views of each input — the image, its
mirror, shifted crops — and average the predicted class probabilities, an ensemble of views."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from dlopt._validation import check_positive_int
from dlopt.augment.crop_flip import crop_flip
from dlopt.errors import InvalidParameterError

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


DEFAULT_MEMORY_BUDGET = 64 << 20  # bytes of view inputs per forward pass


@torch.no_grad()
def tta_predict(
    model: nn.Module,
    x: Tensor,
    views: Sequence[View],
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Tensor:
    """Mean of softmax(model(view(x))) over the views (eval mode; restored afterwards).

    All views of a chunk of `x` go through the model in one forward pass, a batch of
    ``len(views) · chunk`` inputs; the chunk is as large as `memory_budget` (bytes of those
    inputs; activations grow in proportion) allows, and at least one sample. Views must act
    sample by sample (as crops, flips and shifts do), so chunking does not change them; in eval
    mode the result equals the per-view loop up to floating-point summation order.

    Raises:
        ValueError: `views` is empty or `memory_budget` is not a positive int.
    """
    if not views:
        raise InvalidParameterError("tta_predict(views=...) is empty: give at least one view.")
    check_positive_int("memory_budget", memory_budget, caller="tta_predict")
    n_views, n = len(views), len(x)
    per_sample = max(x[:1].numel() * x.element_size(), 1) * n_views
    chunk = max(1, min(n, memory_budget // per_sample))
    was_training = model.training
    model.eval()
    try:
        parts = []
        for start in range(0, n, chunk):
            part = x[start : start + chunk]
            batch = torch.cat([view(part) for view in views])  # (views · chunk, ...)
            probs = model(batch).softmax(-1)
            parts.append(probs.view(n_views, len(part), *probs.shape[1:]).mean(0))
        return torch.cat(parts)
    finally:
        model.train(was_training)
