"""The Trainer: fit / evaluate / predict with callbacks, a NaN guard and exact resume (SPEC J1)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dlopt._validation import check_positive_int
from dlopt.data.batching import Batches
from dlopt.errors import CheckpointError, InvalidParameterError, TrainingDiverged
from dlopt.optim.step_policy import step_policy
from dlopt.regularize.penalties import Penalty
from dlopt.train import resume
from dlopt.train.callbacks import Callback
from dlopt.train.checkpoint import load_checkpoint
from dlopt.train.closure import closure_step, warn_if_noisy
from dlopt.train.distributed import DataParallel
from dlopt.train.evaluation import evaluate_batches, predict_batches
from dlopt.train.metrics import LossFn, check_label_smoothing, resolve_loss
from dlopt.train.progress import ProgressBar, progress_by_default
from dlopt.train.schedules import check_interval, schedule_epoch
from dlopt.train.scores import check_metrics
from dlopt.train.signals import SignalCatcher
from dlopt.train.sources import (
    BatchSource,
    DataLike,
    InMemorySource,
    batch_source,
    check_source,
    eval_batches,
    in_memory,
    to_device,
)
from dlopt.train.state import TrainState
from dlopt.train.step import (
    GradientCheck,
    Precision,
    augment_batch,
    check_augment,
    check_max_norm,
    gradient_step,
)
from dlopt.train.swa import SWA, check_swa
from dlopt.train.totals import EpochTotals, epoch_metrics

_HOOKS = ("on_fit_start", "on_epoch_start", "on_batch_end", "on_epoch_end", "on_fit_end")


class Trainer:
    """Minibatch training of `model` with `optimizer`, on the model's device and dtype.

    Any ``torch.optim`` optimizer works; closure-based ones (torch.optim.LBFGS, dlopt's
    second-order methods: see :class:`~dlopt.optim.StepPolicy`) get a closure. The LR `scheduler` steps once per epoch
    (ReduceLROnPlateau with ``val_loss``, else ``loss``), or after every optimizer step with
    ``scheduler_interval="step"`` (see :mod:`dlopt.train.schedules`). With `nan_guard` a
    non-finite loss or gradient is caught before ``optimizer.step()``: parameters stay as they
    were, the run stops and :class:`TrainingDiverged` is raised after the ``on_fit_end`` hooks.

    The training data is in memory (a Dataset, an (X, y) pair, a Batches: sliced by index, the
    batch order of epoch e drawn from (seed, e)) or any re-iterable of (x, y) batches such as a
    ``DataLoader`` (see :mod:`dlopt.train.sources` for when its resume is exact).

    Everything needed to continue a run bit-for-bit is in :meth:`state_dict`: model, optimizer,
    scheduler, callbacks, position (epoch, batch, step), accumulators and every RNG state.

    `augment` (``aug(x, generator) -> x'``, see :mod:`dlopt.augment`) transforms every training
    batch's inputs, never evaluation's; its generator is seeded from (seed, step), so a resumed
    run draws the same augmentations.

    Args:
        clip_grad_norm: Rescale the gradients to this total 2-norm when larger, before each
            step (``torch.nn.utils.clip_grad_norm_``); first-order optimizers only.
        label_smoothing: ε of the cross-entropy loss (``F.cross_entropy(label_smoothing=ε)``);
            every logged loss, validation's included, is the smoothed one.
        mixed_precision: Forward and loss under ``torch.autocast`` (see
            :class:`~dlopt.train.step.Precision`); evaluation stays in full precision.
        metrics: Names from :data:`dlopt.train.scores.METRICS` (or ``top{k}_accuracy``),
            logged for the validation data as ``val_<name>`` and returned by :meth:`evaluate`.
        swa: Stochastic weight averaging (:class:`~dlopt.train.swa.SWA`).
        progress: Show progress (:class:`~dlopt.train.progress.ProgressBar`: a bar on a
            terminal, a line per epoch elsewhere); None: yes, unless inside
            :func:`~dlopt.train.progress.quiet_trainers`.
        distributed: A :class:`~dlopt.train.distributed.DataParallel` (under torchrun): this
            rank's shard of every in-memory batch in DistributedDataParallel, or the closure's
            loss and gradients summed over the ranks; the NaN guard, signals and stops are
            agreed by all ranks.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        loss: str | LossFn = "auto",
        max_epochs: int = 10,
        batch_size: int = 64,
        scheduler: Any = None,
        scheduler_interval: str = "epoch",
        callbacks: Sequence[Callback] = (),
        seed: int = 0,
        nan_guard: bool = True,
        train_metrics: bool = True,
        handle_signals: bool = False,
        penalties: Sequence[Penalty] = (),
        augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
        clip_grad_norm: float | None = None,
        label_smoothing: float = 0.0,
        mixed_precision: bool = False,
        metrics: Sequence[str] = (),
        swa: SWA | None = None,
        progress: bool | None = None,
        distributed: DataParallel | None = None,
    ) -> None:
        self.model = model
        self.augment = check_augment(augment)
        self._augment_generator: torch.Generator | None = None
        self.optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=1e-3)
        self.loss = loss
        self.max_epochs = check_positive_int("max_epochs", max_epochs, caller="Trainer", minimum=0)
        self.batch_size = check_positive_int("batch_size", batch_size, caller="Trainer")
        self.scheduler = scheduler
        self.scheduler_interval = check_interval(scheduler_interval, scheduler)
        callbacks = list(callbacks)
        if (progress_by_default() if progress is None else progress) and not any(
            isinstance(cb, ProgressBar) for cb in callbacks
        ):
            callbacks.append(ProgressBar())
        # several processes (dlopt.train.distributed): the hooks marked "distributed" below
        self.distributed = distributed
        if distributed is not None:
            callbacks.append(distributed)
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)  # stable: list order kept
        self.seed = seed
        self.nan_guard = nan_guard
        self.train_metrics = train_metrics
        self.handle_signals = handle_signals
        self.penalties = list(penalties)
        self.clip_grad_norm = check_max_norm(clip_grad_norm)
        self.label_smoothing = check_label_smoothing(label_smoothing, loss)
        self.mixed_precision = bool(mixed_precision)
        self.metrics = check_metrics(metrics)
        self.swa = check_swa(swa)
        self.state = TrainState(max_epochs=self.max_epochs)
        self._hooks = {
            h: [cb for cb in self.callbacks if getattr(type(cb), h) is not getattr(Callback, h)]
            for h in _HOOKS
        }
        self._signals = SignalCatcher()
        self._grads_finite = GradientCheck()
        self._last_loss = math.nan
        self._params: list[Tensor] = []
        self._forward: nn.Module = model  # DDP's wrapper when distributed (set per epoch)
        self._source: BatchSource | None = None
        self._train_xy: tuple[Tensor, Tensor] | None = None
        self._fingerprint: str | None = None  # of the training data, computed when first needed
        self._precision = Precision(False, torch.device("cpu"))
        self._policy = step_policy(self.optimizer)  # how to drive it: read once
        self._closure = self._policy.closure
        if self._closure and (self.mixed_precision or self.clip_grad_norm is not None):
            raise InvalidParameterError(
                f"Trainer(mixed_precision=..., clip_grad_norm=...) apply to first-order steps; "
                f"{type(self.optimizer).__name__} runs its own line search: got "
                f"mixed_precision={mixed_precision!r}, clip_grad_norm={clip_grad_norm!r}."
            )
        self._reset_accumulators()

    # ----------------------------------------------------------------- public API
    def request_stop(self, reason: str) -> None:
        """Ask the run to stop after the current step; `reason` is kept in the state."""
        self.state.should_stop = True
        self.state.stop_reason = reason

    def fit(
        self,
        train: DataLike | Batches | Iterable[tuple[Tensor, Tensor]],
        val: DataLike | Iterable[tuple[Tensor, Tensor]] | None = None,
        *,
        resume_from: str | Path | None = None,
    ) -> TrainState:
        """Train for `max_epochs` epochs (or until a callback stops the run); return the state.

        `train` and `val` are in-memory data or re-iterables of (x, y) batches (a
        ``DataLoader``); anything else is a TypeError naming the accepted kinds. `resume_from`
        continues the run saved in that checkpoint file (see :class:`Checkpoint`).
        """
        source = self._prepare(train)
        if val is not None:
            check_source(val, "Trainer.fit(val=...)")
        val_data = (
            to_device(val, *self._device_dtype()) if val is not None and in_memory(val) else val
        )
        if resume_from is not None:
            payload, used = load_checkpoint(resume_from)
            try:
                self.load_state_dict(payload)
            except CheckpointError as exc:
                raise CheckpointError(exc.reason, source=used) from None
        with self._signals.installed(self.handle_signals):
            for cb in self._hooks["on_fit_start"]:
                cb.on_fit_start(self)
            while self.state.epoch < self.max_epochs and not self.state.should_stop:
                for cb in self._hooks["on_epoch_start"]:
                    cb.on_epoch_start(self)
                self._run_batches(source)
                if self.state.should_stop:
                    break
                self._end_epoch(val_data)
            if self.swa is not None and not (self.state.diverged or self.state.interrupted):
                self.swa.finish(self.model, source.inputs())
            for cb in self._hooks["on_fit_end"]:
                cb.on_fit_end(self)
        if self.state.diverged:
            raise TrainingDiverged(
                self.state.stop_reason or "training diverged",
                epoch=self.state.epoch + 1,
                step=self.state.step + 1,
            )
        return self.state

    @torch.no_grad()
    def evaluate(
        self, data: DataLike | Iterable[tuple[Tensor, Tensor]], batch_size: int = 4096
    ) -> dict[str, float]:
        """Mean loss (and accuracy for classification, and `metrics`) over `data`, in eval
        mode; `data` is in memory or a re-iterable of (x, y) batches."""
        batches = eval_batches(data, batch_size, self.seed, *self._device_dtype())
        return evaluate_batches(self.model, batches, self._resolve_loss, self.metrics)

    @torch.no_grad()
    def predict(self, X: Tensor, batch_size: int = 4096) -> Tensor:
        """Model outputs for `X` in eval mode (logits for classifiers)."""
        return predict_batches(self.model, X.to(*self._device_dtype()), batch_size)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit-for-bit (plain types and tensors)."""
        return resume.trainer_state(self)

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; any mismatch with this run is a CheckpointError."""
        resume.restore_trainer(self, payload)

    # ----------------------------------------------------------------- set-up
    def _prepare(self, train: object) -> BatchSource:
        device, dtype = self._device_dtype()
        source, self._train_xy = batch_source(train, self.batch_size, self.seed, device, dtype)
        if self.distributed is not None:  # distributed: this rank's shards of every batch
            if not isinstance(source, InMemorySource):
                raise InvalidParameterError(
                    "Trainer(distributed=...) shards in-memory training data; got "
                    f"{type(train).__name__}."
                )
            source = InMemorySource(self.distributed.shard(source.batches))  # type: ignore[arg-type]
        self._source, self._fingerprint = source, None
        self._loss_fn, self._classification = self._resolve_loss(source.targets_sample())
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        self._precision = Precision(self.mixed_precision, device)
        if self._closure:
            warn_if_noisy(self.model, self.optimizer)
        for penalty in self.penalties:
            penalty.bind(self.model, self.optimizer)
        if self.swa is not None:
            self.swa.bind(self.model, self.optimizer, self.callbacks)
        self.state.max_epochs = self.max_epochs
        self.state.batches_per_epoch = source.batches_per_epoch
        return source

    def _resolve_loss(self, target: Tensor) -> tuple[LossFn, bool]:
        return resolve_loss(self.loss, target, self.label_smoothing)

    # ----------------------------------------------------------------- the loop
    def _run_batches(self, source: BatchSource) -> None:
        state = self.state
        batch_hooks = self._hooks["on_batch_end"]
        step_scheduler = self.scheduler if self.scheduler_interval == "step" else None
        if self.swa is not None and self.swa.active(state.epoch - 1):
            step_scheduler = None  # SWALR has taken over the LR
        self._forward = self.model
        if self.distributed is not None and not self._closure:  # distributed: DDP's forward
            self._forward = self.distributed.train_model(self.model)
        count = self._classification and self.train_metrics  # correct predictions
        self.model.train()
        for xb, yb in source.epoch(state.epoch, state.batch):
            if self.augment is not None:
                xb = augment_batch(self, xb)
            if self._closure:
                loss, out = closure_step(self, xb, yb)
            else:
                loss, out = gradient_step(self, xb, yb)
            if state.diverged:
                return
            for penalty in self.penalties:
                penalty.after_step()
            if step_scheduler is not None:
                step_scheduler.step()
            state.step += 1
            state.batch += 1
            host = self.nan_guard and not self._closure  # the guard has read the loss already
            self.totals.add(self._last_loss if host else loss, out if count else None, yb)
            if self._signals.caught is not None:
                self._take_signal()
            for cb in batch_hooks:
                cb.on_batch_end(self)
            if state.should_stop:
                return

    def _end_epoch(self, val: Any) -> None:
        state = self.state
        if self.distributed is not None:  # distributed: the epoch's sums over the ranks
            self.distributed.reduce_accumulators(self)
        metrics = epoch_metrics(self, val)
        schedule_epoch(self, metrics)
        self._reset_accumulators()
        state.epoch += 1
        state.batch = 0
        state.metrics = metrics
        state.history.append(metrics)
        if self._signals.caught is not None:
            self._take_signal()
        for cb in self._hooks["on_epoch_end"]:
            cb.on_epoch_end(self)

    def _reset_accumulators(self) -> None:
        self.totals = EpochTotals.zeros(self._device_dtype()[0])

    def _take_signal(self) -> None:
        self.state.interrupted = self._signals.caught
        self.request_stop(
            f"interrupted by {self._signals.name()} at epoch {self.state.epoch + 1} "
            f"step {self.state.step}"
        )

    # ----------------------------------------------------------------- data and devices
    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        for p in self.model.parameters():
            return p.device, p.dtype if p.is_floating_point() else torch.float32
        return torch.device("cpu"), torch.float32
