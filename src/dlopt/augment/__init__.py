"""Data augmentation as batched tensor ops on any device (SPEC E): affine maps and flips in one
resampling, crops of padded images, PCA colour, elastic deformation, input noise, and
test-time augmentation. Every augmentation is ``aug(x, generator=None) -> x'`` on a batch
(N × C × H × W, or flat rows with ``shape=(C, H, W)``); the Trainer's ``augment=`` takes one."""

from dlopt.augment.affine import RandomAffine, affine
from dlopt.augment.compose import Augmentation, Compose
from dlopt.augment.crop_flip import RandomCropFlip, crop_flip
from dlopt.augment.elastic import Elastic
from dlopt.augment.noise import InputNoise
from dlopt.augment.pca_color import PCAColor
from dlopt.augment.tta import flip_and_shift_views, tta_predict

__all__ = [
    "Augmentation",
    "Compose",
    "Elastic",
    "InputNoise",
    "PCAColor",
    "RandomAffine",
    "RandomCropFlip",
    "affine",
    "crop_flip",
    "flip_and_shift_views",
    "tta_predict",
]
