"""Regularization: weight penalties for networks and penalized linear least squares."""

from dlopt.regularize.linear import (
    ConvergenceWarning,
    LinearFit,
    elastic_net,
    lasso,
    ridge,
    sklearn_alpha,
    soft_threshold,
)
from dlopt.regularize.penalties import L1, L2, ElasticNet, Penalty, select_parameters, sparsity

__all__ = [
    "L1",
    "L2",
    "ConvergenceWarning",
    "ElasticNet",
    "LinearFit",
    "Penalty",
    "elastic_net",
    "lasso",
    "ridge",
    "select_parameters",
    "sklearn_alpha",
    "soft_threshold",
    "sparsity",
]
