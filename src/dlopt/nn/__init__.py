"""Layers and model builders: activations (registry, Maxout), models (mlp, cnn)."""

from dlopt.nn.activations import ACTIVATIONS, Maxout, Step, activation, activation_names
from dlopt.nn.dropout import (
    P_HIDDEN,
    P_INPUT,
    Dropout,
    GaussianNoise,
    mc_dropout_predict,
    widen_for_dropout,
)
from dlopt.nn.models import Reshape, cnn, mlp

__all__ = [
    "ACTIVATIONS",
    "P_HIDDEN",
    "P_INPUT",
    "Dropout",
    "GaussianNoise",
    "Maxout",
    "Reshape",
    "Step",
    "activation",
    "activation_names",
    "cnn",
    "mc_dropout_predict",
    "mlp",
    "widen_for_dropout",
]
