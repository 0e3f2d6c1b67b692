"""`dlopt bench augment`: batched augmentation against the per-image loop.

torchvision's transforms augment one image per call (inside a Dataset's ``__getitem__``); the
anchor here is that pattern with the same arithmetic — the same affine resampling, crop or
elastic field, applied image by image — against dlopt's one call per batch (one
``affine_grid``/``grid_sample``, one gather, one smoothing convolution for every image).
A CIFAR-sized batch: 256 × 3 × 32 × 32. Where kornia is installed (a benchmark-only
comparator, ``pip install --no-deps kornia kornia_rs``), the affine and crop + flip rows also
time its batched ``RandomAffine`` + ``RandomHorizontalFlip`` and ``RandomCrop`` +
``RandomHorizontalFlip`` with the same ranges (translate = 3/32 of the size = 3 pixels).
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from dlopt.augment import Elastic, PCAColor, RandomAffine, RandomCropFlip
from dlopt.benchmarks.harness import BenchReport, Timing, benchmark, interleave, wall_clock

BATCH, SHAPE = 256, (3, 32, 32)


def _batched(aug: Callable[[Tensor, torch.Generator], Tensor], x: Tensor) -> Callable[[], float]:
    generator = torch.Generator(device=x.device).manual_seed(0)
    return lambda: wall_clock(lambda: aug(x, generator), x.device)[1]


def _per_image(aug: Callable[[Tensor, torch.Generator], Tensor], x: Tensor) -> Callable[[], float]:
    generator = torch.Generator(device=x.device).manual_seed(0)

    def run() -> Tensor:
        return torch.cat([aug(x[i : i + 1], generator) for i in range(len(x))])

    return lambda: wall_clock(run, x.device)[1]


def _kornia(name: str) -> Callable[[Tensor], Tensor] | None:
    """kornia's batched pipeline for the row `name`, or None (kornia absent, no counterpart)."""
    if importlib.util.find_spec("kornia") is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kornia's import-time notices
        import kornia.augmentation as K
    flip = K.RandomHorizontalFlip(p=0.5)
    if name.startswith("affine"):
        shift = 3 / SHAPE[-1]
        affine = K.RandomAffine(degrees=15, translate=(shift, shift), scale=(0.9, 1.1), p=1.0)
        return torch.nn.Sequential(affine, flip)
    if name.startswith("crop"):
        return torch.nn.Sequential(K.RandomCrop(SHAPE[1:], padding=4), flip)
    return None


def _timed(aug: Callable[[Tensor], Tensor], x: Tensor) -> Callable[[], float]:
    torch.manual_seed(0)

    def run() -> None:
        with torch.no_grad():
            aug(x)

    return lambda: wall_clock(run, x.device)[1]


@benchmark(
    "augment",
    "batched augmentation (one call per batch) vs the per-image loop of torchvision's pattern",
    devices=("cpu", "cuda"),
)
def augment_benchmark(repeats: int, device: torch.device) -> BenchReport:
    x = torch.rand(BATCH, *SHAPE, generator=torch.Generator().manual_seed(0)).to(device)
    augmentations: dict[str, Callable[[Tensor, torch.Generator], Tensor]] = {
        "affine (rotation, scale, shift, flip)": RandomAffine(
            rotation=15, scale=(0.9, 1.1), shift=3, hflip=0.5
        ),
        "crop (pad 4) + flip": RandomCropFlip(padding=4),
        "elastic (α 4, σ 3)": Elastic(alpha=4, sigma=3),
        "PCA colour": PCAColor(0.1).fit(x[:64].cpu()),
    }
    timings: list[Timing] = []
    notes = []
    for name, aug in augmentations.items():
        variants: dict[str, Callable[[], float | None]] = {
            f"{name}, batched (dlopt)": _batched(aug, x),
            f"{name}, per image": _per_image(aug, x),
        }
        kornia = _kornia(name)
        if kornia is not None:
            variants[f"{name}, kornia"] = _timed(kornia, x)
        group = interleave(variants, repeats)
        timings += group
        notes.append(f"{name}: per-image loop / batched = {group[1].median / group[0].median:.1f}×")
        if kornia is not None:
            notes.append(
                f"{name}: dlopt / kornia = {group[0].median / group[2].median:.3f} (median), "
                f"{min(group[0].seconds) / min(group[2].seconds):.3f} (min)"
            )
        elif name.startswith(("affine", "crop")):
            notes.append(f"{name}: kornia not installed (no kornia row)")
    return BenchReport(
        f"Augmentation of a {BATCH} × {'×'.join(map(str, SHAPE))} batch on {device}",
        "batch",
        timings,
        baseline=timings[0].name,
        notes=notes,
    )
