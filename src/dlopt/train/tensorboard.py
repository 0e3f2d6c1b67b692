"""TensorBoard logging, optional: ``pip install 'dlopt[tensorboard]'`` installs the
``tensorboard`` package that ``torch.utils.tensorboard`` writes with; dlopt never needs it
otherwise.

Every epoch's metrics (``trainer.state.metrics``: loss, the validation metrics, the learning
rate) are written as scalars at step = epoch, so a resumed run continues its curves, and
``tensorboard --logdir DIR`` draws them beside other runs'.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlopt.train.callbacks import Callback

if TYPE_CHECKING:
    from dlopt.train.trainer import Trainer

EXTRA_HINT = "pip install 'dlopt[tensorboard]'"


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoard(Callback):
    """Write each epoch's metrics to an event file in `log_dir` (made if missing).

    Raises:
        ImportError: the ``tensorboard`` package is not installed (the message says how).
    """

    order = 80  # after the callbacks that compute metrics, before ProgressBar and Checkpoint

    def __init__(self, log_dir: str | Path) -> None:
        if not tensorboard_available():
            raise ImportError(
                f"TensorBoard(log_dir=...) needs the tensorboard package: {EXTRA_HINT}."
            )
        self.log_dir = Path(log_dir)
        self._writer: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self._writer is None:
            return
        epoch = trainer.state.epoch
        for name, value in trainer.state.metrics.items():
            if name != "epoch" and math.isfinite(value):
                self._writer.add_scalar(name, value, epoch)
        self._writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
