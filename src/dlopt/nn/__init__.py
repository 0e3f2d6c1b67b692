"""Layers and model builders: activations (registry, Maxout), models (mlp, cnn)."""

from dlopt.nn.activations import (
    ACTIVATIONS,
    Maxout,
    MaxoutConv,
    Step,
    activation,
    activation_names,
)
from dlopt.nn.diagnostics import Snapshot, measure, time_per_call
from dlopt.nn.dropout import (
    P_HIDDEN,
    P_INPUT,
    Dropout,
    GaussianNoise,
    mc_dropout_predict,
    widen_for_dropout,
)
from dlopt.nn.models import Reshape, cnn, mlp
from dlopt.nn.normalization import (
    batchnorm_affine,
    fold_batchnorm,
    fold_batchnorm_with_report,
    recalibrate_batchnorm,
)

__all__ = [
    "ACTIVATIONS",
    "P_HIDDEN",
    "P_INPUT",
    "Dropout",
    "GaussianNoise",
    "Maxout",
    "MaxoutConv",
    "Reshape",
    "Snapshot",
    "Step",
    "activation",
    "activation_names",
    "batchnorm_affine",
    "cnn",
    "fold_batchnorm",
    "fold_batchnorm_with_report",
    "mc_dropout_predict",
    "measure",
    "mlp",
    "recalibrate_batchnorm",
    "time_per_call",
    "widen_for_dropout",
]
