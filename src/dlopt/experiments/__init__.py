"""`dlopt reproduce`: the chapter's claims as experiments, and the HTML report."""

from dlopt.experiments import (  # noqa: F401  (importing registers the experiments)
    activations,
    augmentation,
    batchnorm,
    dropout,
    early_stopping,
    ensembles,
    gradient_noise,
    optimizers,
    regularization,
    search,
)
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
