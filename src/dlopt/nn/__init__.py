"""Layers and model builders: activations (registry, Maxout), models (mlp, cnn)."""

from dlopt.nn.activations import ACTIVATIONS, Maxout, Step, activation, activation_names
from dlopt.nn.models import Reshape, cnn, mlp

__all__ = [
    "ACTIVATIONS",
    "Maxout",
    "Reshape",
    "Step",
    "activation",
    "activation_names",
    "cnn",
    "mlp",
]
