"""`dlopt reproduce`: the chapter's claims as experiments, and the HTML report."""

from dlopt.experiments import dropout, early_stopping, regularization  # noqa: F401  (registers)
from dlopt.experiments.registry import (
    EXPERIMENTS,
    Context,
    Experiment,
    Outcome,
    Result,
    experiment,
    run_experiments,
)

__all__ = [
    "EXPERIMENTS",
    "Context",
    "Experiment",
    "Outcome",
    "Result",
    "experiment",
    "run_experiments",
]
