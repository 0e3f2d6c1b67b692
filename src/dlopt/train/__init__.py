"""Training: the Trainer, its callbacks, checkpoints and metrics."""

from dlopt.train.batchnorm_callbacks import ActivationDiagnostics, RecalibrateBatchNorm
from dlopt.train.callbacks import Callback, EarlyStopping, History, ProgressBar, write_history
from dlopt.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dlopt.train.distributed import DataParallel
from dlopt.train.metrics import LOSSES, accuracy, mse_loss
from dlopt.train.state import TrainState
from dlopt.train.trainer import Trainer

__all__ = [
    "LOSSES",
    "ActivationDiagnostics",
    "Callback",
    "Checkpoint",
    "DataParallel",
    "EarlyStopping",
    "History",
    "ProgressBar",
    "RecalibrateBatchNorm",
    "TrainState",
    "Trainer",
    "accuracy",
    "load_checkpoint",
    "mse_loss",
    "save_checkpoint",
    "write_history",
]
