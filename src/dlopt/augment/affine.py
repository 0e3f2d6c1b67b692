r"""Affine augmentation: rotation, scaling, shifts and flips in one resampling (SPEC E1).

Each output pixel p (in pixels, from the image centre) reads the input at

    p_in = F R(−θ) (p − t) / s,

the inverse of p ↦ s R(θ) F p + t: flip F (diag(±1, ±1)), rotation θ, scale s, shift t. All of
it is one sampling grid (a single bmm) + ``grid_sample`` for the whole batch with per-sample
parameters — no Python loop over images (torchvision's per-sample ops loop). Pixels read from
outside the image are `fill` (zeros by default, ``padding_mode="border"`` repeats the edge).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from dlopt._validation import check_choice, check_finite_number, check_fraction
from dlopt.augment._images import as_images, coin, uniform
from dlopt.errors import InvalidParameterError

MODES = {"bilinear": "bilinear", "nearest": "nearest", "bicubic": "bicubic"}
PADDING = {"zeros": "zeros", "border": "border", "reflection": "reflection"}


def affine(
    x: Tensor,
    *,
    rotation: Tensor | float = 0.0,
    scale: Tensor | float = 1.0,
    shift: Tensor | Sequence[float] = (0.0, 0.0),
    hflip: Tensor | bool = False,
    vflip: Tensor | bool = False,
    shape: Sequence[int] | None = None,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
) -> Tensor:
    """Apply per-sample affine maps: `rotation` in degrees (counter-clockwise as displayed,
    rows growing downwards), `scale`, `shift` = (right, down) in pixels, flips — each a number
    for the whole batch or a tensor with one value (one row of two for `shift`) per image."""
    images, restore = as_images(x, shape, "affine")
    check_choice("mode", mode, MODES, caller="affine")
    check_choice("padding_mode", padding_mode, PADDING, caller="affine")
    n, _, h, w = images.shape
    like = torch.empty(0, device=images.device, dtype=torch.float32)

    def per_sample(value: Tensor | Sequence[float] | float | bool, *row: int) -> Tensor:
        """One value (a row of `row` values) per image, from a scalar or a batch of them."""
        return torch.as_tensor(value, dtype=torch.float32, device=images.device).expand(n, *row)

    theta = _inverse_maps(
        per_sample(rotation) * (math.pi / 180),
        per_sample(scale),
        per_sample(shift, 2),
        per_sample(hflip),
        per_sample(vflip),
        h,
        w,
        like,
    )
    out = resample(images, theta, mode=mode, padding_mode=padding_mode)
    return restore(out)


def _inverse_maps(
    angle: Tensor,
    scale: Tensor,
    shift: Tensor,
    hflip: Tensor,
    vflip: Tensor,
    h: int,
    w: int,
    like: Tensor,
) -> Tensor:
    """N × 2 × 3 matrices for affine_grid: the inverse map in normalized coordinates
    (x, y ∈ [−1, 1]), built in pixels and conjugated by D = diag(2/w, 2/h), so that rotations
    stay rotations on non-square images."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    fx = 1 - 2 * hflip.float()
    fy = 1 - 2 * vflip.float()
    # F R(−θ) / s in pixels, on (x right, y down): there a counter-clockwise turn as displayed
    # is R(θ) = [[cos, sin], [−sin, cos]], so R(−θ) = [[cos, −sin], [sin, cos]]
    m = (
        torch.stack(
            [
                torch.stack([fx * cos, -fx * sin], -1),
                torch.stack([fy * sin, fy * cos], -1),
            ],
            -2,
        )
        / scale[:, None, None]
    )
    d = torch.tensor([2.0 / w, 2.0 / h], device=like.device)
    linear = m * d[None, :, None] / d[None, None, :]  # D M D⁻¹
    offset = -(m @ shift[:, :, None]).squeeze(-1) * d  # D (−M t)
    return torch.cat([linear, offset[:, :, None]], -1)


def resample(
    images: Tensor,
    theta: Tensor,
    *,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    displacement: Tensor | None = None,
) -> Tensor:
    """`images` read where the N × 2 × 3 maps `theta` send each output pixel centre
    (normalized coordinates, align_corners=False), moved further by `displacement`
    (N × 2 × H × W, in pixels, x then y) if given: one grid_sample for the batch."""
    grid = _grid(theta.to(images.dtype), *images.shape[-2:])
    if displacement is not None:
        h, w = images.shape[-2:]
        per_pixel = torch.tensor([2.0 / w, 2.0 / h], dtype=images.dtype, device=images.device)
        grid = grid + displacement.permute(0, 2, 3, 1) * per_pixel
    return F.grid_sample(images, grid, mode=mode, padding_mode=padding_mode, align_corners=False)


def _grid(theta: Tensor, h: int, w: int) -> Tensor:
    """``F.affine_grid(theta, (N, C, h, w), align_corners=False)`` as one bmm: the pixel
    centres (x, y, 1) in normalized coordinates, HW × 3, times each θᵀ → N × h × w × 2.
    (affine_grid builds and multiplies the same matrices with more passes: 3–4× slower.)"""
    n = theta.shape[0]
    xs = (torch.arange(w, dtype=theta.dtype, device=theta.device) * 2 + 1) / w - 1
    ys = (torch.arange(h, dtype=theta.dtype, device=theta.device) * 2 + 1) / h - 1
    base = torch.stack(
        [xs.expand(h, w), ys[:, None].expand(h, w), torch.ones_like(xs).expand(h, w)], -1
    )  # h × w × 3
    return torch.bmm(base.view(1, h * w, 3).expand(n, -1, -1), theta.transpose(1, 2)).view(
        n, h, w, 2
    )


class RandomAffine:
    """Random per-sample affine maps (SPEC E1): rotation ~ U(−rotation, rotation) degrees,
    scale ~ U(*scale), shifts ~ U(−shift, shift) pixels on each axis, each flip with its
    probability.

    >>> import torch
    >>> aug = RandomAffine(rotation=10, shift=1, shape=(1, 8, 8))
    >>> aug(torch.rand(5, 64), torch.Generator().manual_seed(0)).shape
    torch.Size([5, 64])
    """

    def __init__(
        self,
        *,
        rotation: float = 0.0,
        scale: tuple[float, float] = (1.0, 1.0),
        shift: float = 0.0,
        hflip: float = 0.0,
        vflip: float = 0.0,
        shape: Sequence[int] | None = None,
        mode: str = "bilinear",
        padding_mode: str = "zeros",
    ) -> None:
        caller = "RandomAffine"
        self.rotation = check_finite_number("rotation", rotation, caller=caller, nonnegative=True)
        self.shift = check_finite_number("shift", shift, caller=caller, nonnegative=True)
        low, high = (check_finite_number("scale", s, caller=caller, positive=True) for s in scale)
        if low > high:
            raise InvalidParameterError(
                f"RandomAffine(scale=...) must be (low, high), low ≤ high; got {scale}."
            )
        self.scale = (low, high)
        self.hflip = check_fraction("hflip", hflip, caller=caller, high_open=False)
        self.vflip = check_fraction("vflip", vflip, caller=caller, high_open=False)
        self.shape, self.mode, self.padding_mode = shape, mode, padding_mode
        check_choice("mode", mode, MODES, caller=caller)
        check_choice("padding_mode", padding_mode, PADDING, caller=caller)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        n, like = len(x), x
        shift = torch.stack(
            [uniform(n, -self.shift, self.shift, like, generator) for _ in range(2)], -1
        )
        return affine(
            x,
            rotation=uniform(n, -self.rotation, self.rotation, like, generator),
            scale=uniform(n, *self.scale, like, generator),
            shift=shift,
            hflip=coin(n, self.hflip, like, generator),
            vflip=coin(n, self.vflip, like, generator),
            shape=self.shape,
            mode=self.mode,
            padding_mode=self.padding_mode,
        )
