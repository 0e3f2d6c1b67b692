"""Ensembles (SPEC G): combining members by the model average or the vote, members that share
an architecture trained in parallel in one vmap-ed computation, bagging, and boosting (SAMME,
gradient boosting on residuals)."""

from dlopt.ensemble.bagging import EnsembleHistory, bootstrap_indices, fit_stacked
from dlopt.ensemble.boosting import (
    SAMME,
    GradientBoosted,
    gradient_boost,
    network_member,
    samme,
)
from dlopt.ensemble.combine import average, member_outputs, vote
from dlopt.ensemble.stacked import StackedEnsemble

__all__ = [
    "SAMME",
    "EnsembleHistory",
    "GradientBoosted",
    "StackedEnsemble",
    "average",
    "bootstrap_indices",
    "fit_stacked",
    "gradient_boost",
    "member_outputs",
    "network_member",
    "samme",
    "vote",
]
