"""BN code 2 (B2), the affine map and folding (B3), Maxout conv and A4 diagnostics."""

import logging

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from dlopt.nn import (
    MaxoutConv,
    batchnorm_affine,
    cnn,
    fold_batchnorm,
    fold_batchnorm_with_report,
    measure,
    mlp,
    recalibrate_batchnorm,
)


def _randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial running statistics and affine parameters in every BN layer."""
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            if m.track_running_stats:
                m.running_mean.copy_(torch.randn(n, generator=generator) * 2)
                m.running_var.copy_(torch.rand(n, generator=generator) * 3 + 0.05)
            if m.affine:
                m.weight.data = torch.randn(n, generator=generator)
                m.bias.data = torch.randn(n, generator=generator)
    return model.eval()


PATTERNS = {
    "linear+bn": lambda w: nn.Sequential(nn.Linear(7, w), nn.BatchNorm1d(w), nn.ReLU()),
    "linear(no bias)+bn": lambda w: nn.Sequential(nn.Linear(7, w, bias=False), nn.BatchNorm1d(w)),
    "conv1d+bn": lambda w: nn.Sequential(
        nn.Unflatten(1, (1, 7)),
        nn.Conv1d(1, w, 3, padding=1),
        nn.BatchNorm1d(w),
        nn.Tanh(),
        nn.Flatten(),
    ),
    "conv2d+bn": lambda w: nn.Sequential(
        nn.Unflatten(1, (1, 7, 1)),
        nn.Conv2d(1, w, (3, 1), padding=(1, 0)),
        nn.BatchNorm2d(w),
        nn.ReLU(),
        nn.Flatten(),
    ),
    "conv2d(no bias)+bn nested": lambda w: nn.Sequential(
        nn.Unflatten(1, (1, 7, 1)),
        nn.Sequential(nn.Conv2d(1, w, (3, 1), padding=(1, 0), bias=False), nn.BatchNorm2d(w)),
        nn.Flatten(),
    ),
    "bn without affine": lambda w: nn.Sequential(nn.Linear(7, w), nn.BatchNorm1d(w, affine=False)),
    "mlp builder": lambda w: mlp(7, 3, (w, w), batch_norm=True, activation="tanh"),
    "cnn builder": lambda w: cnn((7,), 3, channels=(w, w), batch_norm=True, hidden=(w,)),
}


@settings(max_examples=60, deadline=None)
@given(
    pattern=st.sampled_from(sorted(PATTERNS)), width=st.integers(1, 12), seed=st.integers(0, 999)
)
def test_folded_models_equal_the_unfolded_ones(pattern, width, seed):
    """Within 1e-5 in float32, for every supported layer pattern; BN layers all disappear."""
    torch.manual_seed(seed)
    model = _randomize_bn(PATTERNS[pattern](width), seed)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, report = fold_batchnorm_with_report(model)
    assert report == []
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    x = torch.randn(11, 7, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "original kept"


def test_folding_matches_torch_fusion_utilities():
    torch.manual_seed(0)
    conv, bn2 = nn.Conv2d(3, 5, 3).eval(), _randomize_bn(nn.BatchNorm2d(5), 1)
    linear, bn1 = nn.Linear(4, 6).eval(), _randomize_bn(nn.BatchNorm1d(6), 2)
    ours_conv = fold_batchnorm(nn.Sequential(conv, bn2))[0]
    ours_linear = fold_batchnorm(nn.Sequential(linear, bn1))[0]
    ref_conv, ref_linear = fuse_conv_bn_eval(conv, bn2), fuse_linear_bn_eval(linear, bn1)
    torch.testing.assert_close(ours_conv.weight, ref_conv.weight)
    torch.testing.assert_close(ours_conv.bias, ref_conv.bias)
    torch.testing.assert_close(ours_linear.weight, ref_linear.weight)
    torch.testing.assert_close(ours_linear.bias, ref_linear.bias)


def test_unfoldable_batchnorms_stay_and_are_reported(caplog):
    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.bn = nn.Linear(5, 5), nn.BatchNorm1d(5)

        def forward(self, x):
            return self.bn(self.lin(x))

    model = nn.Sequential(
        nn.BatchNorm1d(4),
        nn.Linear(4, 5),
        nn.ReLU(),
        nn.BatchNorm1d(5),
        nn.Linear(5, 5),
        nn.BatchNorm1d(5, track_running_stats=False),
        Wrapper(),
    )
    _randomize_bn(model, 3)
    folded, report = fold_batchnorm_with_report(model)
    assert len(report) == 4
    assert any("first layer" in r for r in report) and any("ReLU" in r for r in report)
    assert any("track_running_stats=False" in r for r in report)
    assert any("not inside an nn.Sequential" in r for r in report)
    x = torch.randn(6, 4)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model.eval()(x))
    with caplog.at_level(logging.WARNING, logger="dlopt"):
        fold_batchnorm(model)
    assert len(caplog.records) == 4


def test_batchnorm_affine_is_the_prediction_time_map():
    bn = _randomize_bn(nn.BatchNorm1d(5), 4)
    scale, shift = batchnorm_affine(bn)
    z = torch.randn(8, 5)
    torch.testing.assert_close(bn(z), (scale * z.double() + shift).float())


def _bn_mlp(dropout=0.0):
    torch.manual_seed(0)
    return mlp(6, 3, (8, 5), batch_norm=True, dropout=dropout)


def _batches():
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(m, 6, generator=generator) * 3 + 1 for m in (16, 16, 16, 9)]


def _bn_inputs_by_hand(model, batches):
    """Inputs of each BN layer, computed by hand with batch statistics (training behaviour)."""
    lin1, bn1, act1, lin2 = model[1], model[2], model[3], model[4]
    first, second = [], []
    for x in batches:
        z1 = lin1(x)
        first.append(z1)
        h = act1(F.batch_norm(z1, None, None, bn1.weight, bn1.bias, training=True, eps=bn1.eps))
        second.append(lin2(h))
    return first, second


@torch.no_grad()
def test_batch_average_is_the_mean_of_minibatch_statistics():
    """Code 2: μ = mean of batch means, σ² = mean of batch variances × m/(m−1)."""
    model, batches = _bn_mlp(), _batches()
    inputs = _bn_inputs_by_hand(model, batches)
    recalibrate_batchnorm(model, batches)
    for bn, zs in zip((model[2], model[5]), inputs, strict=True):
        mean = torch.stack([z.mean(0) for z in zs]).mean(0)
        var = torch.stack([z.var(0, unbiased=True) for z in zs]).mean(0)
        torch.testing.assert_close(bn.running_mean, mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bn.running_var, var, rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_exact_mode_is_the_population_statistics_over_every_sample():
    model, batches = _bn_mlp(), _batches()
    inputs = _bn_inputs_by_hand(model, batches)
    recalibrate_batchnorm(model, [(x, None) for x in batches], mode="exact")
    for bn, zs in zip((model[2], model[5]), inputs, strict=True):
        everything = torch.cat(zs).double()
        torch.testing.assert_close(
            bn.running_mean.double(), everything.mean(0), rtol=1e-5, atol=1e-6
        )
        torch.testing.assert_close(
            bn.running_var.double(), everything.var(0, unbiased=True), rtol=1e-5, atol=1e-6
        )


def test_batch_average_equals_torch_update_bn_and_ignores_dropout():
    batches = _batches()
    ours, theirs = _bn_mlp(), _bn_mlp()
    recalibrate_batchnorm(ours, batches)
    torch.optim.swa_utils.update_bn(batches, theirs)
    for key, value in ours.state_dict().items():
        if "running" in key:
            torch.testing.assert_close(value, theirs.state_dict()[key], rtol=1e-5, atol=1e-6)
    with_dropout = _bn_mlp(dropout=0.5)  # dropout stays off during the pass, as at prediction
    recalibrate_batchnorm(with_dropout, batches)
    plain = _bn_mlp()
    recalibrate_batchnorm(plain, batches)
    assert torch.equal(with_dropout[2].running_mean, plain[2].running_mean)
    assert with_dropout.training  # the mode it had


def test_recalibrate_refuses_nothing_to_average():
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_batchnorm(_bn_mlp(), [])
    with pytest.raises(ValueError, match="mode"):
        recalibrate_batchnorm(_bn_mlp(), _batches(), mode="ema")


def test_maxout_conv_is_a_max_over_conv_pieces():
    torch.manual_seed(0)
    layer = MaxoutConv(2, 3, 3, pieces=4, dims=2).double()
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    z = layer.conv(x).view(2, 3, 4, 5, 5)
    torch.testing.assert_close(layer(x), z.max(dim=2).values)
    assert torch.autograd.gradcheck(layer, (x.requires_grad_(),))
    assert MaxoutConv(1, 2, 3, dims=1)(torch.randn(4, 1, 9)).shape == (4, 2, 9)


def test_measure_sees_saturation_and_vanishing_gradients_in_deep_sigmoid_nets():
    torch.manual_seed(0)
    X, y = torch.randn(64, 10) * 4, torch.randint(0, 3, (64,))
    sigmoid = mlp(10, 3, (32,) * 8, activation="sigmoid")
    relu = mlp(10, 3, (32,) * 8, activation="relu")
    before = [p.clone() for p in sigmoid.parameters()]
    s, r = measure(sigmoid, X, y, F.cross_entropy), measure(relu, X, y, F.cross_entropy)
    assert all(torch.equal(p, b) for p, b in zip(sigmoid.parameters(), before, strict=True))
    assert len(s.saturation) == 8 and len(s.grad_norm) == 9
    assert s.grad_norm[0] < 1e-3 * s.grad_norm[-1]  # vanishing toward the input
    assert r.grad_norm[0] > 1e-2 * r.grad_norm[-1]
    assert min(s.output_mean) > 0.3  # sigmoid outputs are not zero-centred
    # |τ'| < 1e-3 needs |z| > 6.9 for the sigmoid: large inputs saturate its first layer;
    # by the same definition ReLU is "saturated" on its negative half (zero slope)
    big = measure(sigmoid, X * 10, y, F.cross_entropy)
    assert big.saturation[0] > 0.5 and s.saturation[0] < big.saturation[0]
    assert all(0.2 < share < 0.8 for share in r.saturation)


def test_the_folded_copy_is_laid_out_for_inference_without_changing_its_outputs():
    """In-place ReLUs only right after a Linear/Conv; conv weights channels_last on the CPU;
    the input untouched, gradients still exact, a 4-D output equal (in NHWC strides)."""
    torch.manual_seed(0)
    shared = nn.ReLU()
    model = _randomize_bn(
        nn.Sequential(
            shared,  # first: it reads the caller's input, so it must stay out of place
            nn.Unflatten(1, (2, 3, 3)),
            nn.Conv2d(2, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            shared,
            nn.Conv2d(4, 4, 1),
        ),
        4,
    )
    folded = fold_batchnorm(model)
    relus = [m for m in folded if isinstance(m, nn.ReLU)]
    assert [r.inplace for r in relus] == [False, True] and not shared.inplace
    conv = folded[2]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert model[2].weight.is_contiguous()  # the original keeps its layout
    x = torch.randn(5, 18) - 0.5
    x_before = x.clone()
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = folded(a), model.eval()(b)
    assert torch.equal(x, x_before)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    out.square().sum().backward()
    expected.square().sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-5)
