r"""Elastic deformation ("morphing", SPEC E3; Simard, Steinkraus & Platt 2003).

Each image gets its own smooth random displacement field: uniform noise U(−1, 1) for the two
coordinates of every pixel, smoothed by a Gaussian of standard deviation `sigma` pixels
(a depthwise convolution, separable: two 1-D passes) and scaled by `alpha` pixels; the image is
resampled at p + u(p). Small sigma gives near-random fields; large sigma near-affine ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from dlopt._validation import check_choice, check_finite_number
from dlopt.augment._images import as_images
from dlopt.augment.affine import PADDING, resample


def gaussian_kernel(sigma: float, like: Tensor) -> Tensor:
    """The normalized 1-D Gaussian over ±3σ (at least one pixel each side)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, device=like.device, dtype=like.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def smooth(fields: Tensor, sigma: float) -> Tensor:
    """Each channel of N × C × H × W blurred by the Gaussian, zero outside. Separable, and each
    1-D pass is a product with the banded matrix B_ij = k(j − i): two batched GEMMs, several
    times faster on the CPU than a depthwise convolution with the same kernel."""
    h, w = fields.shape[-2:]
    return _band(h, sigma, fields) @ fields @ _band(w, sigma, fields).T


def _band(size: int, sigma: float, like: Tensor) -> Tensor:
    k = gaussian_kernel(sigma, like)
    r = len(k) // 2
    i = torch.arange(size, device=like.device)
    offset = i[None, :] - i[:, None] + r  # j − i + r
    inside = (offset >= 0) & (offset < len(k))
    return torch.where(
        inside,
        k[offset.clamp(0, len(k) - 1)],
        torch.zeros((), dtype=like.dtype, device=like.device),
    )


class Elastic:
    """Random elastic deformations; `alpha` and `sigma` in pixels (Simard et al. used
    α = 34, σ = 4 on 28 × 28 digits).

    >>> import torch
    >>> aug = Elastic(alpha=8, sigma=3, shape=(1, 28, 28))
    >>> aug(torch.rand(4, 784), torch.Generator().manual_seed(0)).shape
    torch.Size([4, 784])
    """

    def __init__(
        self,
        alpha: float = 34.0,
        sigma: float = 4.0,
        *,
        shape: Sequence[int] | None = None,
        padding_mode: str = "zeros",
    ) -> None:
        self.alpha = check_finite_number("alpha", alpha, caller="Elastic", nonnegative=True)
        self.sigma = check_finite_number("sigma", sigma, caller="Elastic", positive=True)
        check_choice("padding_mode", padding_mode, PADDING, caller="Elastic")
        self.shape, self.padding_mode = shape, padding_mode

    def fields(
        self, n: int, h: int, w: int, like: Tensor, generator: torch.Generator | None
    ) -> Tensor:
        """N × 2 × H × W displacements (x, y) in pixels."""
        noise = torch.rand(n, 2, h, w, generator=generator, device=like.device) * 2 - 1
        return smooth(noise.to(like.dtype), self.sigma) * self.alpha

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        images, restore = as_images(x, self.shape, "Elastic")
        n, _, h, w = images.shape
        u = self.fields(n, h, w, images, generator)
        identity = torch.eye(2, 3, device=images.device).expand(n, 2, 3)
        out = resample(images, identity, padding_mode=self.padding_mode, displacement=u)
        return restore(out)
