"""Dropout conventions (F1–F3) and noise layers (E4)."""

import math

import pytest
import torch
from torch import nn

from dlopt.nn import (
    P_HIDDEN,
    P_INPUT,
    Dropout,
    GaussianNoise,
    mc_dropout_predict,
    mlp,
    widen_for_dropout,
)


@pytest.mark.parametrize("mode", ["inverted", "classic"])
@pytest.mark.parametrize("p", [0.2, 0.5])
def test_training_output_equals_prediction_output_in_expectation(mode, p):
    """Statistical test: over N = 40 000 masks the mean training output of every unit lies within
    5 standard errors of the prediction output (x for inverted, (1 − p)x for classic)."""
    torch.manual_seed(0)
    layer = Dropout(p, mode)
    x = torch.linspace(-2, 3, 16, dtype=torch.float64)
    samples = layer.train()(x.expand(40_000, 16))
    predicted = layer.eval()(x)
    keep = 1 - p
    per_sample_std = x.abs() * math.sqrt(p * keep) / (keep if mode == "inverted" else 1.0)
    tolerance = 5 * per_sample_std / math.sqrt(40_000) + 1e-12
    assert torch.all((samples.mean(0) - predicted).abs() <= tolerance)
    torch.testing.assert_close(predicted, x if mode == "inverted" else keep * x)


def test_classic_prediction_is_the_notes_weight_scaling():
    """Classic dropout at prediction = the next layer's weights scaled by (1 − p)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), Dropout(0.5, "classic"), nn.Linear(7, 3))
    scaled = nn.Sequential(model[0], model[1], nn.Identity(), nn.Linear(7, 3))
    with torch.no_grad():
        scaled[3].weight.copy_(model[3].weight * 0.5)
        scaled[3].bias.copy_(model[3].bias)
    x = torch.randn(9, 5)
    torch.testing.assert_close(model.eval()(x), scaled(x))


def test_masks_are_fresh_per_sample():
    torch.manual_seed(0)
    out = Dropout(0.5).train()(torch.ones(64, 32))
    assert len({tuple(row.tolist()) for row in (out != 0)}) == 64
    assert 0.4 < float((out == 0).double().mean()) < 0.6


def test_mc_dropout_average_converges_to_weight_scaling_for_a_linear_net():
    """For a linear net E[f(x; mask)] is exactly the weight-scaled output; the MC error shrinks
    like 1/√T."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), Dropout(0.5), nn.Linear(8, 2)).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    with torch.no_grad():
        exact = net.eval()(x)
    errors = {
        t: float((mc_dropout_predict(net, x, samples=t) - exact).abs().max()) for t in (16, 4096)
    }
    assert errors[4096] < errors[16] / 4 and errors[4096] < 0.05
    assert not net.training  # mode restored


def test_mc_dropout_keeps_batchnorm_in_eval_mode():
    torch.manual_seed(0)
    net = mlp(4, 2, (8,), batch_norm=True, dropout=0.3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    mc_dropout_predict(net, torch.randn(10, 4), samples=5)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize("layer", [nn.Dropout(0.5), nn.Dropout1d(0.5), nn.AlphaDropout(0.5)])
def test_mc_dropout_samples_torchs_dropout_layers_too(layer):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), layer, nn.Linear(16, 2))
    X = torch.randn(10, 4)
    with torch.no_grad():
        deterministic = net.eval()(X)
    a, b = (mc_dropout_predict(net, X, samples=3) for _ in range(2))
    assert not torch.allclose(a, deterministic) and not torch.allclose(a, b)


def test_widening_and_default_rates():
    assert (P_INPUT, P_HIDDEN) == (0.2, 0.5)
    assert widen_for_dropout([100, 30], 0.5) == [200, 60]
    assert widen_for_dropout([10], 0.2) == [13]
    model = mlp(4, 2, (8,), dropout=P_HIDDEN, input_dropout=P_INPUT, dropout_mode="classic")
    modes = [(m.p, m.mode) for m in model if isinstance(m, Dropout)]
    assert modes == [(0.2, "classic"), (0.5, "classic")]
    with pytest.raises(ValueError, match="mode"):
        Dropout(0.5, "reversed")


def test_gaussian_noise_trains_noisy_and_predicts_clean():
    torch.manual_seed(0)
    layer = GaussianNoise(0.3)
    x = torch.zeros(100_000)
    assert abs(float(layer.train()(x).std()) - 0.3) < 0.005
    assert torch.equal(layer.eval()(x), x)
    model = mlp(4, 2, (8,), input_noise=0.1, hidden_noise=0.2)
    assert [m.std for m in model if isinstance(m, GaussianNoise)] == [0.1, 0.2]
    with pytest.raises(ValueError, match="std"):
        GaussianNoise(-1.0)
