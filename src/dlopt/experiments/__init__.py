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
    Claim,
    Context,
    Experiment,
    Measured,
    Row,
    experiment,
    run_experiments,
)
from dlopt.experiments.stats import decide, seed_block

__all__ = [
    "EXPERIMENTS",
    "Claim",
    "Context",
    "Experiment",
    "Measured",
    "Row",
    "decide",
    "experiment",
    "run_experiments",
    "seed_block",
]
