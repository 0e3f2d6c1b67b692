import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlopt.nn import ACTIVATIONS, Maxout, Step, activation, activation_names, cnn, mlp

SMOOTH_AWAY_FROM_KINKS = sorted(set(ACTIVATIONS) - {"step"})


@pytest.mark.parametrize("name", SMOOTH_AWAY_FROM_KINKS)
def test_activation_gradients_match_finite_differences(name):
    torch.manual_seed(0)
    z = torch.randn(40, dtype=torch.float64)
    z = z + 0.05 * torch.sign(z)  # keep clear of the kink at 0 (relu, leaky_relu, prelu, elu)
    module = activation(name).double()
    assert torch.autograd.gradcheck(module, (z.requires_grad_(),))


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("sigmoid", torch.sigmoid),
        ("tanh", torch.tanh),
        ("relu", F.relu),
        ("gelu", F.gelu),
        ("leaky_relu", lambda z: F.leaky_relu(z, 0.01)),
        ("elu", F.elu),
        ("silu", F.silu),
        ("mish", F.mish),
        ("softplus", F.softplus),
        ("selu", F.selu),
        ("linear", lambda z: z),
    ],
)
def test_activation_values_equal_torch_functional(name, reference):
    z = torch.linspace(-4, 4, 101)
    torch.testing.assert_close(activation(name)(z), reference(z))


def test_step_is_heaviside_with_zero_gradient():
    z = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    out = Step()(z)
    assert out.tolist() == [0.0, 0.0, 1.0]
    out.sum().backward()
    assert z.grad.tolist() == [0.0, 0.0, 0.0]


def test_maxout_equals_a_hand_written_max_over_pieces():
    torch.manual_seed(1)
    layer = Maxout(5, 3, pieces=4).double()
    x = torch.randn(7, 5, dtype=torch.float64)
    W, b = layer.linear.weight.view(3, 4, 5), layer.linear.bias.view(3, 4)
    expected = torch.stack(
        [torch.stack([x @ W[j, i] + b[j, i] for i in range(4)]).amax(0) for j in range(3)], dim=1
    )
    torch.testing.assert_close(layer(x), expected)
    assert torch.autograd.gradcheck(layer, (x.requires_grad_(),))


def test_registry_options_and_unknown_names():
    assert activation("leaky_relu", negative_slope=0.2).negative_slope == 0.2
    assert activation("prelu", num_parameters=8).weight.shape == (8,)
    with pytest.raises(ValueError, match=r"Did you mean 'relu'"):
        activation("rellu")
    with pytest.raises(ValueError, match="is a layer"):
        activation("maxout")
    assert "maxout" in activation_names() and "swish" in activation_names()


def test_mlp_layout_puts_batchnorm_before_the_activation_and_drops_linear_bias():
    model = mlp(10, 3, (8, 6), activation="tanh", batch_norm=True, dropout=0.5, input_dropout=0.2)
    kinds = [type(m).__name__ for m in model]
    assert kinds == [
        "Flatten",
        "Dropout",
        "Linear",
        "BatchNorm1d",
        "Tanh",
        "Dropout",
        "Linear",
        "BatchNorm1d",
        "Tanh",
        "Dropout",
        "Linear",
    ]
    assert model[2].bias is None and model[-1].bias is not None
    assert model[1].p == 0.2 and model[5].p == 0.5
    assert model(torch.randn(4, 10)).shape == (4, 3)
    maxout = mlp(10, 3, (8,), activation="maxout", maxout_pieces=3)
    assert isinstance(maxout[1], Maxout) and maxout(torch.randn(2, 10)).shape == (2, 3)


@pytest.mark.parametrize(
    ("shape", "conv"), [((40,), nn.Conv1d), ((2, 40), nn.Conv1d), ((3, 8, 8), nn.Conv2d)]
)
def test_cnn_builds_conv1d_or_conv2d_and_accepts_flat_inputs(shape, conv):
    model = cnn(shape, 5, channels=(4, 6), batch_norm=True, hidden=(16,))
    assert sum(isinstance(m, conv) for m in model) == 2
    flat = torch.randn(3, int(torch.tensor(shape).prod()))
    assert model(flat).shape == (3, 5)


def test_builders_validate_their_arguments():
    with pytest.raises(ValueError, match="dropout"):
        mlp(3, 2, dropout=1.0)
    with pytest.raises(TypeError, match="hidden"):
        mlp(3, 2, hidden=(2.5,))
    with pytest.raises(ValueError, match="in_shape"):
        cnn((1, 2, 3, 4), 2)
