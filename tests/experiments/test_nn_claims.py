"""The bench-fold anchors the BN experiments rely on: folding equals torch's own fusion."""

import torch


def test_bench_models_fold_like_torch_fusion():
    from dlopt.benchmarks.bn_fold import _with_statistics, separable_cnn, torch_fused
    from dlopt.nn import fold_batchnorm

    model = _with_statistics(separable_cnn())
    x = torch.randn(2, 3 * 32 * 32)
    with torch.inference_mode():
        reference = model(x)
        torch.testing.assert_close(fold_batchnorm(model)(x), reference, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(torch_fused(model)(x), reference, rtol=1e-5, atol=1e-5)
    assert len(list(fold_batchnorm(model))) == len(list(model)) - 11  # every BN removed
