"""Ensembles (SPEC G): combining members by the model average or the vote, members that share
an architecture trained in parallel in one vmap-ed computation, and bagging."""

from dlopt.ensemble.bagging import EnsembleHistory, bootstrap_indices, fit_stacked
from dlopt.ensemble.combine import average, member_outputs, vote
from dlopt.ensemble.stacked import StackedEnsemble

__all__ = [
    "EnsembleHistory",
    "StackedEnsemble",
    "average",
    "bootstrap_indices",
    "fit_stacked",
    "member_outputs",
    "vote",
]
