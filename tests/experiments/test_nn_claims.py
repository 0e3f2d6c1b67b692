"""The A4, B4, B2 experiments: each verdict follows from its own numbers; bench-fold anchors."""

import pytest
import torch

from .claims import check_claim, run_claims

IDS = ["A4", "B4", "B2"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, run_claims(out, IDS)


def _verdict(claim, n):
    if claim == "A4":
        family = ["relu", "leaky_relu", "prelu", "elu", "maxout"]
        return n["grad_ratio_first_to_last_sigmoid"] <= 1e-3 and all(
            n[f"grad_ratio_first_to_last_{f}"] >= 1e-2 for f in family
        )
    if claim == "B4":
        plain_init = [v for k, v in n.items() if k.startswith("plain_init")]
        bn_init = [v for k, v in n.items() if k.startswith("bn_init")]
        plain_lr = [v for k, v in n.items() if k.startswith("plain_lr")]
        bn_lr = [v for k, v in n.items() if k.startswith("bn_lr")]
        return (
            min(bn_init) >= 0.9 > min(plain_init)
            and sum(a >= 0.9 for a in bn_lr) > sum(a >= 0.9 for a in plain_lr)
            and n["bn_deep_sigmoid"] >= 0.5
            and n["plain_deep_sigmoid"] < 0.2
            and n["noisy_small_BN, no dropout"] >= n["noisy_small_neither"]
            and n["noisy_small_BN, no dropout"] >= n["noisy_small_dropout 0.5, no BN"] - 0.01
        )
    layers = [k for k in n if k.endswith("_mean_rel_error_code2")]
    closer = all(n[k] < n[k.replace("code2", "running")] for k in layers) and all(
        n[k.replace("mean", "var")] < n[k.replace("mean", "var").replace("code2", "running")]
        for k in layers
    )
    return closer and (
        n["test_accuracy_code2_batch_average"] >= n["test_accuracy_running_average"] - 0.005
    )


@pytest.mark.parametrize("claim", IDS)
def test_verdicts_follow_from_the_numbers(results, claim):
    out, entries = results
    check_claim(out, entries[claim], _verdict(claim, entries[claim]["numbers"]))


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
