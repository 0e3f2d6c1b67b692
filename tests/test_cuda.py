"""The same code on CUDA (device and dtype follow the inputs). Skipped without a GPU."""

import warnings

import pytest
import torch

from .optim.problems import extended_rosenbrock

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("method", ["lbfgs", "cg", "bfgs", "newton-cg", "newton"])
def test_minimize_runs_on_the_gpu(method):
    from dlopt.optim import minimize

    x0 = torch.full((10,), -1.2, dtype=torch.float64, device="cuda")
    x0[1::2] = 1.0
    result = minimize(extended_rosenbrock, x0, method=method)
    assert result.success and result.x.device.type == "cuda"
    assert torch.allclose(result.x.cpu(), torch.ones(10, dtype=torch.float64), atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("method", ["lbfgs", "cg", "bfgs", "newton-cg", "newton"])
def test_minimize_in_lower_precision_on_the_gpu(method, dtype):
    """float32 and half precision on the device path (its host reads convert to float64; a
    half-precision Hessian is solved in float32)."""
    from dlopt.optim import minimize

    scale = torch.arange(1, 11, dtype=dtype, device="cuda")
    result = minimize(
        lambda x: (scale * (x - 0.5) ** 2).sum(),
        torch.zeros(10, dtype=dtype, device="cuda"),
        method=method,
        tol=0.1,
    )
    assert result.success and result.x.dtype == dtype and result.x.device.type == "cuda"
    torch.testing.assert_close(result.x.float().cpu(), torch.full((10,), 0.5), atol=0.05, rtol=0)


def test_trainer_penalties_fold_and_ridge_on_the_gpu():
    from dlopt.data import load_bundled, split_dataset
    from dlopt.nn import fold_batchnorm, mlp
    from dlopt.regularize import L1, ridge
    from dlopt.train import Trainer

    splits = split_dataset(load_bundled("digits"), seed=0)
    torch.manual_seed(0)
    model = mlp(64, 10, (64,), batch_norm=True, dropout=0.2).cuda()
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), 1e-3),
        max_epochs=15,
        penalties=[L1(1e-4, proximal=True)],
    )
    trainer.fit(splits.train, splits.val)
    assert trainer.evaluate(splits.test)["accuracy"] > 0.9
    x = splits.test.X[:16].cuda()
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(model)(x), model.eval()(x), rtol=1e-4, atol=1e-4)
    X, y = torch.randn(50, 5, device="cuda"), torch.randn(50, device="cuda")
    assert ridge(X, y, 1.0).coef.device.type == "cuda"


@pytest.mark.parametrize("method", ["lbfgs", "cg"])
def test_device_synchronisations_per_iteration_on_the_gpu(method):
    """≤ 3 host-device synchronisations per iteration, counted by the CUDA runtime trace
    (every .item(), .tolist() and blocking copy shows up as a cudaStreamSynchronize)."""
    from torch.profiler import ProfilerActivity, profile

    from dlopt.benchmarks.optim import SYNC_EVENTS
    from dlopt.optim import minimize

    x0 = torch.full((1000,), -1.2, dtype=torch.float64, device="cuda")
    x0[1::2] = 1.0
    minimize(extended_rosenbrock, x0, method=method)  # warm-up
    torch.cuda.synchronize()
    with warnings.catch_warnings():  # "profiler clears events at the end of each cycle"
        warnings.simplefilter("ignore", UserWarning)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            result = minimize(extended_rosenbrock, x0, method=method)
    syncs = sum(e.count for e in prof.key_averages() if e.key in SYNC_EVENTS)
    assert result.success
    assert syncs / result.nit <= 3.0, (syncs, result.nit)


@pytest.mark.parametrize("name", ["LBFGS", "BFGS", "NonlinearCG", "NewtonCG", "Newton"])
def test_optimizer_classes_and_state_dicts_on_the_gpu(name):
    import dlopt.optim as optim

    torch.manual_seed(0)
    X = torch.randn(200, 5, device="cuda", dtype=torch.float64)
    y = (X @ torch.arange(1.0, 6.0, device="cuda", dtype=torch.float64) > 0).double()

    def make():
        w = torch.zeros(5, device="cuda", dtype=torch.float64, requires_grad=True)
        return w, getattr(optim, name)([w])

    def closure_for(w, opt):
        backward = name in ("LBFGS", "BFGS", "NonlinearCG")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(X @ w, y) + 1e-2 * (w @ w)
            if backward:
                loss.backward()
            return loss

        return closure

    w, opt = make()
    for _ in range(2):
        opt.step(closure_for(w, opt))
    state = opt.state_dict()
    w2, opt2 = make()
    with torch.no_grad():
        w2.copy_(w)
    opt2.load_state_dict(state)
    opt.step(closure_for(w, opt))
    opt2.step(closure_for(w2, opt2))
    torch.testing.assert_close(w2, w, rtol=1e-10, atol=1e-12)
    assert w.device.type == "cuda"


def test_float32_minimize_on_the_gpu():
    from dlopt.optim import minimize

    x0 = torch.full((100,), -1.2, device="cuda")
    x0[1::2] = 1.0
    result = minimize(extended_rosenbrock, x0, method="lbfgs", tol=1e-3)
    assert result.success and result.x.dtype == torch.float32
    assert torch.allclose(result.x.cpu(), torch.ones(100), atol=1e-2)


def test_batchnorm_statistics_and_channels_last_folding_on_the_gpu(monkeypatch):
    from dlopt.nn import cnn, fold_batchnorm, recalibrate_batchnorm

    # cuDNN convolutions default to TF32 (10-bit mantissa): compare in full float32
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    model = cnn((3, 16, 16), 10, channels=(8, 16), batch_norm=True)
    gpu_model = cnn((3, 16, 16), 10, channels=(8, 16), batch_norm=True)
    gpu_model.load_state_dict(model.state_dict())
    gpu_model = gpu_model.cuda()
    batches = [torch.randn(32, 3 * 16 * 16) for _ in range(4)]
    on_cpu = recalibrate_batchnorm(model, batches, mode="exact")
    on_gpu = recalibrate_batchnorm(gpu_model, [b.cuda() for b in batches], mode="exact")
    for a, b in zip(on_cpu.state_dict().values(), on_gpu.state_dict().values(), strict=True):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-4, atol=1e-5)
    on_gpu = on_gpu.eval().to(memory_format=torch.channels_last)
    x = batches[0].cuda()
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(on_gpu)(x), on_gpu(x), rtol=1e-5, atol=1e-5)


def test_augmentations_run_on_the_gpu_with_a_device_generator():
    from dlopt.augment import (
        Compose,
        Elastic,
        InputNoise,
        PCAColor,
        RandomAffine,
        RandomCropFlip,
        affine,
        crop_flip,
    )

    x = torch.rand(6, 3, 8, 8)
    gpu = x.cuda()
    # deterministic maps: the same numbers on both devices
    angles = torch.tensor([0.0, 90.0, 10.0, -30.0, 45.0, 180.0])
    torch.testing.assert_close(
        affine(gpu, rotation=angles.cuda(), scale=1.1).cpu(),
        affine(x, rotation=angles, scale=1.1),
        rtol=1e-5,
        atol=1e-5,
    )
    offsets = torch.tensor([[0, 0], [1, 2], [2, 2], [0, 1], [1, 1], [2, 0]])
    torch.testing.assert_close(
        crop_flip(gpu, offsets.cuda(), padding=1).cpu(), crop_flip(x, offsets, padding=1)
    )
    generator = torch.Generator(device="cuda").manual_seed(0)
    chain = Compose(
        [
            RandomAffine(rotation=10, shift=1),
            RandomCropFlip(padding=1),
            Elastic(alpha=2, sigma=2),
            PCAColor(0.1).fit(x),
            InputNoise(0.01),
        ]
    )
    out = chain(gpu, generator)
    assert out.device.type == "cuda" and out.shape == gpu.shape and out.isfinite().all()


def test_trainer_augments_on_the_gpu():
    from dlopt.augment import RandomCropFlip
    from dlopt.data import load_bundled, split_dataset
    from dlopt.nn import cnn
    from dlopt.train import Trainer

    splits = split_dataset(load_bundled("digits"), seed=0, train_size=200)
    torch.manual_seed(0)
    model = cnn((1, 8, 8), 10, channels=(8,)).cuda()
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), 3e-3),
        max_epochs=30,
        augment=RandomCropFlip(padding=1, flip=0.0, shape=(1, 8, 8)),
    )
    trainer.fit(splits.train, splits.val)
    assert trainer.evaluate(splits.test)["accuracy"] > 0.8


def test_stacked_ensemble_trains_on_the_gpu():
    from dlopt.data import load_bundled, split_dataset
    from dlopt.ensemble import StackedEnsemble, average, fit_stacked
    from dlopt.nn import mlp

    splits = split_dataset(load_bundled("digits"), seed=0, train_size=300)
    torch.manual_seed(0)
    ensemble = StackedEnsemble(lambda: mlp(64, 10, (32,)), 4).cuda()
    fit_stacked(ensemble, splits.train.X, splits.train.y, epochs=30, lr=3e-3)
    outputs = ensemble(splits.test.X.cuda())
    assert outputs.device.type == "cuda" and outputs.shape[:2] == (4, len(splits.test))
    accuracy = (average(outputs).argmax(-1).cpu() == splits.test.y).float().mean()
    assert accuracy > 0.85
