"""Augmentations against exact references: torch.rot90/flip/roll, padded slicing, numpy's
eigen-decomposition, scipy's Gaussian filter, and the distributions they draw from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from dlopt.augment import (
    Compose,
    Elastic,
    InputNoise,
    PCAColor,
    RandomAffine,
    RandomCropFlip,
    affine,
    crop_flip,
    flip_and_shift_views,
    tta_predict,
)
from dlopt.augment.elastic import smooth


def images(n=4, c=3, h=6, w=6, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_affine_is_exact_on_quarter_turns_flips_and_integer_shifts():
    x = images(h=6, w=6)
    near = {"mode": "nearest"}
    torch.testing.assert_close(affine(x, rotation=90, **near), torch.rot90(x, 1, (-2, -1)))
    torch.testing.assert_close(affine(x, rotation=-90, **near), torch.rot90(x, -1, (-2, -1)))
    wide = images(h=4, w=6)  # a half turn maps a non-square image onto itself
    torch.testing.assert_close(affine(wide, rotation=180, **near), torch.rot90(wide, 2, (-2, -1)))
    torch.testing.assert_close(affine(x, hflip=True, **near), x.flip(-1))
    torch.testing.assert_close(affine(x, vflip=True, **near), x.flip(-2))
    shifted = torch.zeros_like(x)
    shifted[..., 2:, :5] = x[..., :-2, 1:]  # 2 down, 1 left, zeros coming in
    torch.testing.assert_close(affine(x, shift=(-1, 2)), shifted, rtol=0, atol=1e-6)
    torch.testing.assert_close(affine(x), x, rtol=0, atol=1e-6)  # bilinear at pixel centres


def test_affine_takes_one_parameter_per_image_and_flat_rows():
    x = images(n=3)
    angles = torch.tensor([0.0, 90.0, -90.0])
    batch = affine(x, rotation=angles, mode="nearest")
    for i, angle in enumerate(angles.tolist()):
        torch.testing.assert_close(
            batch[i : i + 1], affine(x[i : i + 1], rotation=angle, mode="nearest")
        )
    flat = affine(x.reshape(3, -1), rotation=angles, mode="nearest", shape=(3, 6, 6))
    torch.testing.assert_close(flat, batch.reshape(3, -1))
    # a turn and its inverse give back a smooth image away from the corners
    smooth_x = F.interpolate(images(n=2, h=4, w=4), size=(32, 32), mode="bilinear")
    back = affine(affine(smooth_x, rotation=20, scale=1.1), rotation=-20, scale=1 / 1.1)
    centre = (slice(None), slice(None), slice(10, 22), slice(10, 22))
    torch.testing.assert_close(back[centre], smooth_x[centre], rtol=0, atol=0.05)


def test_random_affine_draws_within_its_ranges_and_is_reproducible():
    x = images(n=64, c=1, h=9, w=9)
    aug = RandomAffine(shift=2, shape=(1, 9, 9), mode="nearest")
    flat = x.reshape(64, -1)
    a = aug(flat, torch.Generator().manual_seed(3))
    b = aug(flat, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == flat.shape
    moved = a.view_as(x)
    # every output is the image shifted by whole-or-half pixels, never more than 2
    for i in range(64):
        best = min(
            (moved[i] - affine(x[i : i + 1], shift=(dx, dy), mode="nearest")[0]).abs().max()
            for dx in range(-2, 3)
            for dy in range(-2, 3)
        )
        assert best == 0
    flips = RandomAffine(hflip=1.0)(x)
    torch.testing.assert_close(flips, x.flip(-1), rtol=0, atol=1e-6)


def test_crop_flip_is_a_gather_of_the_padded_image():
    x = images(n=3)
    p = 2
    padded = F.pad(x, (p,) * 4)
    offsets = torch.tensor([[0, 0], [p, p], [4, 1]])
    flips = torch.tensor([False, False, True])
    out = crop_flip(x, offsets, flips, padding=p)
    for i, ((r, c), f) in enumerate(zip(offsets.tolist(), flips.tolist(), strict=True)):
        expected = padded[i, :, r : r + 6, c : c + 6]
        torch.testing.assert_close(out[i], expected.flip(-1) if f else expected, rtol=0, atol=0)
    torch.testing.assert_close(out[1], x[1], rtol=0, atol=0)  # the centre crop is the image
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        crop_flip(x, torch.tensor([[0, 5]]), padding=p)


@pytest.mark.parametrize("p", [0, 1, 6, 9])  # 6 × 6 images: padding up to beyond the image
def test_every_crop_equals_slicing_the_zero_padded_image(p):
    x = images(n=4)
    x[0, 0, 2, 3] = float("nan")  # a NaN stays where it is; the padding is still zero
    padded = F.pad(x, (p,) * 4)
    for r in range(2 * p + 1):
        for c in range(2 * p + 1):
            for f in (False, True):
                out = crop_flip(x, torch.tensor([r, c]), torch.tensor(f), padding=p)
                expected = padded[:, :, r : r + 6, c : c + 6]
                expected = expected.flip(-1) if f else expected
                torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)


def test_random_crop_flip_outputs_are_crops_of_the_padded_image():
    x = images(n=20, c=1, h=5, w=5)
    out = RandomCropFlip(padding=1, flip=0.5)(x, torch.Generator().manual_seed(0))
    candidates = [
        crop_flip(x, torch.tensor([r, c]), torch.tensor(f), padding=1)
        for r in range(3)
        for c in range(3)
        for f in (False, True)
    ]
    for i in range(20):
        assert any(torch.equal(out[i], cand[i]) for cand in candidates)


def test_pca_color_matches_numpy_and_draws_shifts_of_the_stated_covariance():
    x = images(n=50, c=3, h=4, w=4, seed=1) * torch.tensor([1.0, 0.5, 0.2])[:, None, None]
    aug = PCAColor(sigma=0.1).fit(x)
    pixels = x.permute(1, 0, 2, 3).reshape(3, -1).double().numpy()
    lam, vectors = np.linalg.eigh(np.cov(pixels))
    np.testing.assert_allclose(aug.eigenvalues.numpy(), lam, rtol=1e-10)
    np.testing.assert_allclose(np.abs(aug.eigenvectors.numpy()), np.abs(vectors), atol=1e-10)
    out = aug(x, torch.Generator().manual_seed(0))
    delta = out - x
    assert torch.allclose(delta, delta[:, :, :1, :1].expand_as(delta), atol=1e-6)  # per image
    shifts = aug.shifts(200_000, torch.Generator().manual_seed(1))
    expected = 0.01 * vectors @ np.diag(lam**2) @ vectors.T
    np.testing.assert_allclose(np.cov(shifts.numpy().T), expected, rtol=0.02, atol=1e-9)
    torch.testing.assert_close(PCAColor(0.0).fit(x)(x), x)
    grey = images(n=10, c=1)  # one channel: a 1 × 1 covariance, shifts of brightness
    bright = PCAColor(0.5).fit(grey)
    torch.testing.assert_close(
        bright.eigenvalues, grey.var().double().reshape(1), rtol=1e-5, atol=0
    )
    assert bright(grey, torch.Generator().manual_seed(0)).shape == grey.shape
    with pytest.raises(RuntimeError, match="fit"):
        PCAColor()(x)
    with pytest.raises(ValueError, match="3 channels"):
        aug(images(c=1))


def test_elastic_fields_are_scipys_gaussian_filter_and_scale_with_alpha():
    noise = torch.rand(
        2, 2, 20, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    ours = smooth(noise, 2.0)
    theirs = np.stack(
        [
            [ndimage.gaussian_filter(f, 2.0, mode="constant", truncate=3.0) for f in img]
            for img in noise.numpy()
        ]
    )
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-10, atol=1e-12)
    x = images(n=2, c=1, h=12, w=12)
    torch.testing.assert_close(Elastic(alpha=0.0, sigma=3)(x), x, rtol=0, atol=1e-6)
    small = Elastic(alpha=1.0, sigma=3).fields(500, 12, 12, x, torch.Generator().manual_seed(0))
    large = Elastic(alpha=4.0, sigma=3).fields(500, 12, 12, x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(large, 4 * small)
    rough = Elastic(alpha=1.0, sigma=0.5).fields(500, 12, 12, x, torch.Generator().manual_seed(0))

    def neighbour_correlation(u):
        a, b = u[..., :, :-1].flatten(), u[..., :, 1:].flatten()
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    assert neighbour_correlation(small) > 0.9 > 0.5 > neighbour_correlation(rough)
    out = Elastic(alpha=2.0, sigma=3, shape=(1, 12, 12))(x.reshape(2, -1))
    assert out.shape == (2, 144) and not torch.equal(out, x.reshape(2, -1))


def test_input_noise_and_compose():
    x = torch.zeros(20_000, 5)
    noisy = InputNoise(0.3)(x, torch.Generator().manual_seed(0))
    assert abs(float(noisy.std()) - 0.3) < 0.005 and abs(float(noisy.mean())) < 0.005
    aug = Compose([RandomCropFlip(1, shape=(1, 4, 4)), InputNoise(0.1)])
    y = torch.rand(3, 16)
    assert torch.equal(
        aug(y, torch.Generator().manual_seed(0)), aug(y, torch.Generator().manual_seed(0))
    )
    with pytest.raises(TypeError, match="not callable"):
        Compose([3])


def test_tta_averages_softmax_over_views():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(5, 1, 4, 4)
    views = flip_and_shift_views((1, 4, 4), shift=1)
    assert len(views) == 10
    torch.testing.assert_close(views[0](x), x)  # the centre crop, unflipped
    torch.testing.assert_close(views[5](x), x.flip(-1))
    expected = torch.stack([model(v(x)).softmax(-1) for v in views]).mean(0)
    torch.testing.assert_close(tta_predict(model, x, views), expected)
    torch.testing.assert_close(tta_predict(model, x, views[:1]), model(x).softmax(-1))
    assert model.training  # restored


@pytest.mark.parametrize("budget", [1, 3 * 36 * 4 * 10 * 2, 1 << 30])  # 1 sample, 2, all at once
def test_tta_predict_batches_every_view_in_chunks_and_equals_the_per_view_loop(budget):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 36, 5),
    )
    model(images(8))  # BN running statistics that are not the identity
    x = images(5, seed=3)
    views = flip_and_shift_views((3, 6, 6))
    model.eval()
    expected = torch.stack([model(v(x)).softmax(-1) for v in views]).mean(0)
    calls = []
    hook = model.register_forward_pre_hook(lambda mod, args: calls.append(len(args[0])))
    got = tta_predict(model, x, views, memory_budget=budget)
    hook.remove()
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    per_forward = max(1, min(5, budget // (3 * 36 * 4 * len(views))))
    assert calls[0] == len(views) * per_forward  # every view of a chunk in one forward
    assert len(calls) == -(-5 // per_forward)
    with pytest.raises(ValueError, match="memory_budget"):
        tta_predict(model, x, views, memory_budget=0)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RandomAffine(rotation=-1), "≥ 0"),
        (lambda: RandomAffine(scale=(1.2, 0.8)), "low ≤ high"),
        (lambda: RandomAffine(hflip=1.5), r"hflip=\.\.\.\) must lie in \[0, 1\]"),
        (lambda: RandomCropFlip(flip=2), r"flip=\.\.\.\) must lie in \[0, 1\]"),
        (lambda: Elastic(sigma=0), "> 0"),
        (lambda: affine(torch.zeros(2, 5)), "shape=\\(C, H, W\\)"),
        (lambda: affine(torch.zeros(2, 5), shape=(1, 2, 2)), "does not hold images"),
        (lambda: affine(torch.zeros(1, 1, 2, 2, dtype=torch.int64)), "floating-point"),
        (lambda: affine(torch.zeros(1, 1, 2, 2), mode="area"), "mode"),
    ],
)
def test_bad_arguments_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize(("h", "w"), [(32, 32), (5, 7), (1, 1)])
def test_the_sampling_grid_is_affine_grids(h, w):
    """resample()'s one-bmm grid against torch's F.affine_grid (align_corners=False)."""
    from dlopt.augment.affine import _grid

    theta = torch.randn(6, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(h))
    expected = F.affine_grid(theta, [6, 1, h, w], align_corners=False)
    torch.testing.assert_close(_grid(theta, h, w), expected, rtol=0, atol=1e-14)
