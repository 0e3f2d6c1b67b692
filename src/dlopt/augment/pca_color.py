r"""PCA colour augmentation (SPEC E2; Krizhevsky et al. 2012, "fancy PCA").

Fit: the eigen-decomposition Σ = P Λ Pᵀ of the channels' covariance over every pixel of the
training set. Apply: each image gets the same colour shift at every pixel,

    δ = P (α ⊙ λ),  α ~ N(0, σ²) per image and eigenvector,

so colours move along the directions in which the data's colours vary, by amounts in
proportion to how much they vary there. The shift's covariance is σ² P Λ² Pᵀ.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dlopt._validation import check_finite_number
from dlopt.augment._images import as_images
from dlopt.errors import InvalidParameterError


class PCAColor:
    """Call :meth:`fit` on training images first.

    >>> import torch
    >>> images = torch.rand(10, 3, 4, 4)
    >>> aug = PCAColor(sigma=0.1).fit(images)
    >>> aug(images, torch.Generator().manual_seed(0)).shape
    torch.Size([10, 3, 4, 4])
    """

    def __init__(self, sigma: float = 0.1, *, shape: Sequence[int] | None = None) -> None:
        self.sigma = check_finite_number("sigma", sigma, caller="PCAColor", nonnegative=True)
        self.shape = shape
        self.eigenvalues: Tensor | None = None  # λ, ascending
        self.eigenvectors: Tensor | None = None  # P, one per column

    def fit(self, x: Tensor) -> PCAColor:
        """Σ over every pixel of `x` (the training images), in float64."""
        images, _ = as_images(x, self.shape, "PCAColor.fit")
        c = images.shape[1]
        pixels = images.transpose(0, 1).reshape(c, -1).double()
        if pixels.shape[1] < 2:
            raise InvalidParameterError(
                "PCAColor.fit: needs at least two pixels to estimate a covariance."
            )
        eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(pixels).reshape(c, c))
        self.eigenvalues = eigenvalues.clamp(min=0)  # rounding can make a zero one negative
        self.eigenvectors = eigenvectors
        return self

    def shifts(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n colour shifts δ = P(α ⊙ λ), one row per image, in float64 on the generator's
        device (the CPU without one)."""
        if self.eigenvalues is None or self.eigenvectors is None:
            raise RuntimeError("PCAColor: call fit(training_images) before augmenting.")
        device = generator.device if generator is not None else torch.device("cpu")
        alpha = torch.randn(
            n, len(self.eigenvalues), generator=generator, device=device, dtype=torch.float64
        )
        lam, vectors = self.eigenvalues.to(device), self.eigenvectors.to(device)
        return (alpha * self.sigma * lam) @ vectors.T

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        images, restore = as_images(x, self.shape, "PCAColor")
        if self.eigenvalues is not None and images.shape[1] != len(self.eigenvalues):
            raise InvalidParameterError(
                f"PCAColor: fitted on {len(self.eigenvalues)} channels; got images with "
                f"{images.shape[1]}."
            )
        delta = self.shifts(len(images), generator)
        return restore(images + delta.to(images)[:, :, None, None])
