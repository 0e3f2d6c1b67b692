"""The lab: a TOML config → validated schema → objects → runs (`dlopt train`, `dlopt search`).

It sits above every library package; nothing in ``train/``, ``search/`` or below imports it.
"""

from dlopt.lab.build import OPTIMIZERS, OptimizerEntry
from dlopt.lab.config import RunConfig, load_config, parse_config
from dlopt.lab.reuse import TrainedRun, evaluate_run, load_run, write_predictions
from dlopt.lab.run import EnsembleResult, RunResult, ensemble_run, train_run
from dlopt.lab.search import SearchInterrupted, search_run

__all__ = [
    "OPTIMIZERS",
    "EnsembleResult",
    "OptimizerEntry",
    "RunConfig",
    "RunResult",
    "SearchInterrupted",
    "TrainedRun",
    "ensemble_run",
    "evaluate_run",
    "load_config",
    "load_run",
    "parse_config",
    "search_run",
    "train_run",
    "write_predictions",
]
