"""Training: the Trainer, its callbacks, checkpoints and metrics."""

from dlopt.train.batchnorm_callbacks import ActivationDiagnostics, RecalibrateBatchNorm
from dlopt.train.callbacks import Callback, EarlyStopping, History, write_history
from dlopt.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dlopt.train.distributed import DataParallel
from dlopt.train.metrics import LOSSES, accuracy, mse_loss
from dlopt.train.progress import ProgressBar, quiet_trainers
from dlopt.train.schedules import one_cycle, warmup, warmup_cosine
from dlopt.train.scores import METRICS
from dlopt.train.state import TrainState
from dlopt.train.swa import SWA
from dlopt.train.tensorboard import TensorBoard
from dlopt.train.trainer import Trainer

__all__ = [
    "LOSSES",
    "METRICS",
    "SWA",
    "ActivationDiagnostics",
    "Callback",
    "Checkpoint",
    "DataParallel",
    "EarlyStopping",
    "History",
    "ProgressBar",
    "RecalibrateBatchNorm",
    "TensorBoard",
    "TrainState",
    "Trainer",
    "accuracy",
    "load_checkpoint",
    "mse_loss",
    "one_cycle",
    "quiet_trainers",
    "save_checkpoint",
    "warmup",
    "warmup_cosine",
    "write_history",
]
