"""The Trainer: fit / evaluate / predict with callbacks, a NaN guard and exact resume (SPEC J1)."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from dlopt._validation import check_positive_int
from dlopt.data.batching import Batches
from dlopt.data.dataset import Dataset
from dlopt.errors import CheckpointError, TrainingDiverged
from dlopt.nn.dropout import noise_layers
from dlopt.regularize.penalties import Penalty, sparsity
from dlopt.train.callbacks import Callback
from dlopt.train.checkpoint import FORMAT, load_checkpoint
from dlopt.train.distributed import DataParallel, ShardedBatches
from dlopt.train.metrics import LossFn, resolve_loss
from dlopt.train.state import TrainState

DataLike = Dataset | tuple[Tensor, Tensor]
_HOOKS = ("on_fit_start", "on_epoch_start", "on_batch_end", "on_epoch_end", "on_fit_end")


class Trainer:
    """Minibatch training of `model` with `optimizer`, on the model's device and dtype.

    Any ``torch.optim`` optimizer works; closure-based ones (L-BFGS, or any optimizer with
    ``requires_closure = True``) get a closure. The LR `scheduler` steps once per epoch
    (ReduceLROnPlateau with ``val_loss``, else ``loss``). With `nan_guard` a non-finite loss or
    gradient is caught before ``optimizer.step()``: parameters stay as they were, the run stops
    and :class:`TrainingDiverged` is raised after the ``on_fit_end`` hooks.

    Everything needed to continue a run bit-for-bit is in :meth:`state_dict`: model, optimizer,
    scheduler, callbacks, position (epoch, batch, step), accumulators and every RNG state. The
    batch order of epoch e is drawn from (seed, e), so it needs no state.

    `augment` (``aug(x, generator) -> x'``, see :mod:`dlopt.augment`) transforms every training
    batch's inputs, never evaluation's; its generator is seeded from (seed, step), so a resumed
    run draws the same augmentations.

    `distributed` (a :class:`~dlopt.train.distributed.DataParallel`, under torchrun) trains on
    this rank's shard of every batch in DistributedDataParallel, or with the closure's loss and
    gradients summed over the ranks; the NaN guard, signals and stops are agreed by all ranks.
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
        callbacks: Sequence[Callback] = (),
        seed: int = 0,
        nan_guard: bool = True,
        train_metrics: bool = True,
        handle_signals: bool = False,
        penalties: Sequence[Penalty] = (),
        augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
        distributed: DataParallel | None = None,
    ) -> None:
        if augment is not None and not callable(augment):
            raise TypeError(
                f"Trainer(augment=...) must be callable as aug(x, generator); got {augment!r}."
            )
        self.model = model
        self.augment = augment
        self._augment_generator: torch.Generator | None = None
        self.optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=1e-3)
        self.loss = loss
        self.max_epochs = check_positive_int("max_epochs", max_epochs, caller="Trainer", minimum=0)
        self.batch_size = check_positive_int("batch_size", batch_size, caller="Trainer")
        self.scheduler = scheduler
        # several processes (dlopt.train.distributed): the hooks marked "distributed" below
        self.distributed = distributed
        if distributed is not None:
            callbacks = [*callbacks, distributed]
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)  # stable: list order kept
        self.seed = seed
        self.nan_guard = nan_guard
        self.train_metrics = train_metrics
        self.handle_signals = handle_signals
        self.penalties = list(penalties)
        self.state = TrainState(max_epochs=self.max_epochs)
        self._hooks = {
            h: [cb for cb in self.callbacks if getattr(type(cb), h) is not getattr(Callback, h)]
            for h in _HOOKS
        }
        self._signal: int | None = None
        self._found_inf: tuple[Tensor, Tensor] | None = None  # (found flag, scale 1)
        self._last_loss = math.nan
        self._params: list[Tensor] = []
        self._train_xy: tuple[Tensor, Tensor] | None = None
        self._fingerprint: str | None = None  # of the training data, computed when first needed
        self._closure = bool(getattr(self.optimizer, "requires_closure", False)) or isinstance(
            self.optimizer, torch.optim.LBFGS
        )
        self._reset_accumulators()

    # ----------------------------------------------------------------- public API
    def request_stop(self, reason: str) -> None:
        """Ask the run to stop after the current step; `reason` is kept in the state."""
        self.state.should_stop = True
        self.state.stop_reason = reason

    def fit(
        self,
        train: DataLike | Batches,
        val: DataLike | None = None,
        *,
        resume_from: str | Path | None = None,
    ) -> TrainState:
        """Train for `max_epochs` epochs (or until a callback stops the run); return the state.

        `resume_from` continues the run saved in that checkpoint file (see :class:`Checkpoint`).
        """
        batches: Batches | ShardedBatches = self._batches(train)
        if self.distributed is not None and isinstance(batches, Batches):
            batches = self.distributed.shard(batches)  # distributed: this rank's shards
        loss_fn, self._classification = resolve_loss(self.loss, batches.y)
        self._loss_fn = loss_fn
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        noisy = noise_layers(self.model) if self._closure else []
        if noisy:
            logging.getLogger("dlopt").warning(
                "%s evaluates each batch several times along its line search, but %s draw "
                "fresh noise at every evaluation: the search sees a different function each "
                "time (expect short steps and failed searches); set the noise to 0 (in a "
                "config: [model] dropout = 0) or use a first-order optimizer",
                type(self.optimizer).__name__,
                ", ".join(noisy),
            )
        for penalty in self.penalties:
            penalty.bind(self.model, self.optimizer)
        val_xy = self._to_device(val) if val is not None else None
        self.state.max_epochs = self.max_epochs
        self.state.batches_per_epoch = len(batches)
        if resume_from is not None:
            payload, used = load_checkpoint(resume_from)
            try:
                self.load_state_dict(payload)
            except CheckpointError as exc:
                raise CheckpointError(exc.reason, source=used) from None
        with self._signals():
            for cb in self._hooks["on_fit_start"]:
                cb.on_fit_start(self)
            while self.state.epoch < self.max_epochs and not self.state.should_stop:
                for cb in self._hooks["on_epoch_start"]:
                    cb.on_epoch_start(self)
                self._run_batches(batches)
                if self.state.should_stop:
                    break
                self._end_epoch(val_xy)
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
    def evaluate(self, data: DataLike, batch_size: int = 4096) -> dict[str, float]:
        """Mean loss (and accuracy for classification) over `data`, in eval mode."""
        X, y = self._to_device(data)
        loss_fn, classification = resolve_loss(self.loss, y)
        total, correct = 0.0, 0.0
        with _eval_mode(self.model):
            for i in range(0, len(X), batch_size):
                out = self.model(X[i : i + batch_size])
                total += float(loss_fn(out, y[i : i + batch_size])) * len(out)
                if classification:
                    correct += float((out.argmax(-1) == y[i : i + batch_size]).sum())
        metrics = {"loss": total / len(X)}
        if classification:
            metrics["accuracy"] = correct / len(X)
        return metrics

    @torch.no_grad()
    def predict(self, X: Tensor, batch_size: int = 4096) -> Tensor:
        """Model outputs for `X` in eval mode (logits for classifiers)."""
        X = X.to(*self._device_dtype())
        with _eval_mode(self.model):
            return torch.cat(
                [self.model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]
            )

    # ----------------------------------------------------------------- the loop
    def _run_batches(self, batches: Batches | ShardedBatches) -> None:
        state, model, optimizer, loss_fn = self.state, self.model, self.optimizer, self._loss_fn
        if self.distributed is not None and not self._closure:  # distributed: DDP's forward
            model = self.distributed.train_model(self.model)
        batch_hooks = self._hooks["on_batch_end"]
        model.train()
        for xb, yb in batches.epoch(state.epoch, state.batch):
            if self.augment is not None:
                xb = self._augmented(xb)
            if self._closure:
                loss, out = self._closure_step(xb, yb)
            else:
                optimizer.zero_grad(set_to_none=True)
                out = model(xb)
                loss = loss_fn(out, yb)
                objective = self._regularized(loss)
                objective.backward()
                if self.nan_guard and not self._finite(objective):
                    self._diverge(objective)
                elif self.nan_guard and self.penalties:
                    self._last_loss = loss.item()  # log the data loss, not J + λR
            if state.diverged:
                return
            if not self._closure:
                for penalty in self.penalties:
                    penalty.before_step()
                optimizer.step()
            for penalty in self.penalties:
                penalty.after_step()
            state.step += 1
            state.batch += 1
            if self.nan_guard and not self._closure:  # the guard has read the loss already
                self._loss_sum_host += self._last_loss * len(yb)
            else:
                self._loss_sum.add_(loss.detach(), alpha=len(yb))
            if self._classification and self.train_metrics and out is not None:
                self._correct.add_((out.argmax(-1) == yb).sum())
            self._seen += len(yb)
            if self._signal is not None:
                self._take_signal()
            for cb in batch_hooks:
                cb.on_batch_end(self)
            if state.should_stop:
                return

    def _augmented(self, xb: Tensor) -> Tensor:
        assert self.augment is not None
        generator = self._augment_generator
        if generator is None or generator.device != xb.device:  # one per run, reseeded below
            generator = self._augment_generator = torch.Generator(device=xb.device)
        generator.manual_seed(self.seed * 1_000_003 + self.state.step)  # (seed, step): resumable
        out = self.augment(xb, generator)
        if not isinstance(out, Tensor) or out.shape != xb.shape:
            raise ValueError(
                f"Trainer(augment=...) must return a batch of the inputs' shape "
                f"{tuple(xb.shape)}; got "
                + (f"{tuple(out.shape)}." if isinstance(out, Tensor) else f"{type(out).__name__}.")
            )
        return out

    def _closure_step(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor | None]:
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        snapshot = [p.detach().clone() for p in params] if self.nan_guard else []
        first: list[Tensor] = []
        bad: list[Tensor] = []
        # dlopt's second-order methods reject a non-finite trial step themselves (their line
        # search shrinks it): only the loss and gradients where they stop are the guard's
        own_guard = getattr(self.optimizer, "handles_nonfinite_trials", False)
        check_trials = self.nan_guard and not own_guard

        def closure() -> Any:  # torch.optim types closures as returning float
            self.optimizer.zero_grad(set_to_none=True)
            out = self.model(xb)
            loss = self._regularized(self._loss_fn(out, yb))
            if getattr(self.optimizer, "closure_backward", True):
                loss.backward()
            if not first:
                first.append(out.detach())
            if check_trials and not bad and not self._finite(loss):
                bad.append(loss.detach())
            return loss

        for penalty in self.penalties:
            penalty.before_step()
        if self.distributed is not None:  # distributed: f, ∇f (and Hv) summed over the ranks
            closure = self.distributed.closure(self.optimizer, closure)
        stepped = self.optimizer.step(closure)
        loss = stepped if isinstance(stepped, Tensor) else torch.tensor(float(stepped))
        if self.nan_guard and own_guard and not self._finite(loss):
            bad.append(loss.detach())
        if self.nan_guard and (bad or not all(bool(p.isfinite().all()) for p in params)):
            with torch.no_grad():
                for p, saved in zip(params, snapshot, strict=True):
                    p.copy_(saved)
            self._diverge(bad[0] if bad else torch.tensor(math.nan))
        return loss, (first[0] if first else None)

    def _regularized(self, loss: Tensor) -> Tensor:
        """J + λR: the penalties' coupled terms join the loss before backward."""
        for penalty in self.penalties:
            term = penalty.term()
            if term is not None:
                loss = loss + term
        return loss

    def _finite(self, loss: Tensor) -> bool:
        """Are the loss and every gradient finite (on every rank, when distributed)?"""
        finite = self._finite_here(loss)
        return finite if self.distributed is None else self.distributed.agree(self, finite)

    def _finite_here(self, loss: Tensor) -> bool:
        """Are the loss and every gradient finite? Two scalar reads, no per-gradient sync.

        The gradients go through the fused kernel behind ``torch.amp.GradScaler`` (scale 1
        leaves them bit-identical): ~10 µs per step on CPU, where an inf-norm per gradient
        costs ~200 µs.
        """
        self._last_loss = value = loss.item()
        if not math.isfinite(value):
            return False
        grads = [p.grad for p in self._params if p.grad is not None]
        if not grads:
            return True
        device = grads[0].device
        if self._found_inf is None or self._found_inf[0].device != device:
            self._found_inf = (torch.zeros(1, device=device), torch.ones(1, device=device))
        found, unit_scale = self._found_inf
        found.zero_()
        try:
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found, unit_scale)
        except RuntimeError:  # grads on several devices, sparse grads: the portable way
            found = torch.stack([g.sum().to(device) for g in grads]).sum().isfinite().logical_not()
        return found.item() == 0

    def _diverge(self, loss: Tensor) -> None:
        state = self.state
        where = f"at epoch {state.epoch + 1} step {state.step + 1}"
        value = float(loss.detach()) if loss.numel() == 1 else math.nan
        if not math.isfinite(value):
            what = f"loss became {'NaN' if math.isnan(value) else 'inf'} {where}"
        else:
            names = [
                n
                for n, p in self.model.named_parameters()
                if p.grad is not None and not bool(p.grad.isfinite().all())
            ]
            what = f"gradient of {names[0] if names else 'a parameter'} became non-finite {where}"
        state.diverged = True
        self.request_stop(what + "; parameters kept from the last finite step")

    def _end_epoch(self, val: tuple[Tensor, Tensor] | None) -> None:
        state = self.state
        if self.distributed is not None:  # distributed: the epoch's sums over the ranks
            self.distributed.reduce_accumulators(self)
        metrics: dict[str, float] = {"epoch": float(state.epoch + 1)}
        seen = max(self._seen, 1)
        metrics["loss"] = (float(self._loss_sum) + self._loss_sum_host) / seen
        if self._classification and self.train_metrics and not self._closure:
            metrics["accuracy"] = float(self._correct) / seen
        if self.penalties:
            with torch.no_grad():
                metrics["penalty"] = sum(float(p.value()) for p in self.penalties)
            unique = {id(p): p for pen in self.penalties for p in pen.parameters}
            metrics["sparsity"] = sparsity(unique.values())
        if val is not None:
            metrics.update({f"val_{k}": v for k, v in self.evaluate(val).items()})
        metrics["lr"] = float(self.optimizer.param_groups[0]["lr"])
        if self.scheduler is not None:
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(metrics.get("val_loss", metrics["loss"]))
            else:
                self.scheduler.step()
        self._reset_accumulators()
        state.epoch += 1
        state.batch = 0
        state.metrics = metrics
        state.history.append(metrics)
        if self._signal is not None:
            self._take_signal()
        for cb in self._hooks["on_epoch_end"]:
            cb.on_epoch_end(self)

    def _reset_accumulators(self) -> None:
        device = self._device_dtype()[0]
        self._loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self._correct = torch.zeros((), dtype=torch.int64, device=device)
        self._loss_sum_host = 0.0
        self._seen = 0

    # ----------------------------------------------------------------- data and devices
    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        for p in self.model.parameters():
            return p.device, p.dtype if p.is_floating_point() else torch.float32
        return torch.device("cpu"), torch.float32

    def _to_device(self, data: DataLike) -> tuple[Tensor, Tensor]:
        X, y = (data.X, data.y) if isinstance(data, Dataset) else data
        device, dtype = self._device_dtype()
        y = y.to(device, dtype) if torch.is_floating_point(y) else y.to(device)
        return X.to(device, dtype), y

    def _batches(self, train: DataLike | Batches) -> Batches:
        if isinstance(train, Batches):
            X, y = self._to_device((train.X, train.y))
            batches = Batches(
                X,
                y,
                train.batch_size,
                shuffle=train.shuffle,
                seed=train.seed,
                drop_last=train.drop_last,
            )
        else:
            X, y = self._to_device(train)
            batches = Batches(X, y, self.batch_size, seed=self.seed)
        self._train_xy, self._fingerprint = (X, y), None
        return batches

    def _data_fingerprint(self) -> str:
        """SHA-256 of the training data, for resume checks: hashed only when a checkpoint is
        written or read, not on every fit."""
        if self._fingerprint is None:
            if self._train_xy is None:
                return ""
            X, y = self._train_xy
            self._fingerprint = Dataset(X.cpu(), y.cpu(), "regression", "train").fingerprint()
        return self._fingerprint

    # ----------------------------------------------------------------- signals
    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, _frame: object) -> None:
            self._signal = signum
            signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _take_signal(self) -> None:
        self.state.interrupted = self._signal
        name = signal.Signals(self._signal).name if self._signal else "signal"
        self.request_stop(
            f"interrupted by {name} at epoch {self.state.epoch + 1} step {self.state.step}"
        )

    # ----------------------------------------------------------------- state
    def _callback_keys(self) -> list[str]:
        seen: dict[str, int] = {}
        keys = []
        for cb in self.callbacks:
            name = type(cb).__name__
            keys.append(f"{name}#{seen.get(name, 0)}")
            seen[name] = seen.get(name, 0) + 1
        return keys

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit-for-bit (plain types and tensors)."""
        s = self.state
        finished_stop = s.should_stop and s.batch == 0 and not s.interrupted and not s.diverged
        state = s.to_dict() | {"stop_reason": s.stop_reason if finished_stop else None}
        np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
        return {
            "format": FORMAT,
            "kind": "trainer",
            "version": 1,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "callbacks": {
                k: cb.state_dict()
                for k, cb in zip(self._callback_keys(), self.callbacks, strict=True)
            },
            "state": state,
            "accumulators": {
                "loss_sum": self._loss_sum.cpu(),
                "correct": self._correct.cpu(),
                "loss_sum_host": self._loss_sum_host,
                "seen": self._seen,
            },
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": [str(np_state[0]), np_state[1].tolist(), *map(_plain, np_state[2:])],
                "python": random.getstate(),
            },
            "meta": {
                "seed": self.seed,
                "batch_size": self.batch_size,
                "data": self._data_fingerprint(),
                "optimizer": type(self.optimizer).__name__,
                "threads": torch.get_num_threads(),
                "torch": str(torch.__version__),
                "world_size": self._world_size(),  # distributed: the shards depend on it
            },
        }

    def _world_size(self) -> int:
        return 1 if self.distributed is None else self.distributed.world_size

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; any mismatch with this run is a CheckpointError."""
        try:
            meta = payload["meta"]
            expected = {
                "seed": self.seed,
                "batch_size": self.batch_size,
                "optimizer": type(self.optimizer).__name__,
            }
            if self._train_xy is not None:
                expected["data"] = self._data_fingerprint()
            for key, value in expected.items():
                if meta[key] != value:
                    raise CheckpointError(
                        f"was saved with {key} {meta[key]!r} but this run has "
                        f"{value!r}; refusing to resume a different run"
                    )
            if meta.get("world_size", 1) != self._world_size():  # distributed
                raise CheckpointError(
                    f"was saved by {meta.get('world_size', 1)} processes but this run has "
                    f"{self._world_size()}; resume with as many (the batches' shards, and so "
                    "the steps, differ)"
                )
            _check_model_matches(self.model.state_dict(), payload["model"])
            _check_finite(payload["model"])
            self.model.load_state_dict(payload["model"], strict=True)
            _check_groups(self.optimizer.param_groups, payload["optimizer"])
            self.optimizer.load_state_dict(payload["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(payload["scheduler"])
            saved_callbacks = payload["callbacks"]
            for key, cb in zip(self._callback_keys(), self.callbacks, strict=True):
                if key in saved_callbacks:
                    cb.load_state_dict(saved_callbacks[key])
            self.state.load_dict(payload["state"])
            acc = payload["accumulators"]
            device = self._device_dtype()[0]
            self._loss_sum = acc["loss_sum"].to(device, torch.float64)
            self._correct = acc["correct"].to(device, torch.int64)
            self._loss_sum_host = float(acc["loss_sum_host"])
            self._seen = int(acc["seen"])
            s = self.state
            if self._loss_sum.numel() != 1 or self._correct.numel() != 1 or self._seen < 0:
                raise CheckpointError("holds accumulators of the wrong shape or sign; refused")
            self._loss_sum, self._correct = self._loss_sum.reshape(()), self._correct.reshape(())
            if min(s.epoch, s.batch, s.step) < 0 or s.batch > max(s.batches_per_epoch, 1):
                raise CheckpointError(
                    f"holds an impossible position (epoch {s.epoch}, batch {s.batch}, "
                    f"step {s.step}); refused"
                )
            rng = payload["rng"]
            torch.set_rng_state(rng["torch"])
            if rng["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
            name, keys, *rest = rng["numpy"]
            np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
            random.setstate(_tuples(rng["python"]))
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise CheckpointError(f"does not match this run: {reason}") from None
        if self.state.stop_reason:
            self.state.should_stop = True  # the saved run had already stopped for good
        if meta.get("threads") != torch.get_num_threads():
            logging.getLogger("dlopt").warning(
                "checkpoint was written with %s threads, this process uses %s: results may "
                "differ in the last bits",
                meta.get("threads"),
                torch.get_num_threads(),
            )


def _check_model_matches(ours: dict[str, Tensor], saved: Any) -> None:
    """Name the first difference between two state dicts' keys and shapes."""
    if not isinstance(saved, dict):
        raise CheckpointError(f"its model state is a {type(saved).__name__}, not a dict")
    missing = [k for k in ours if k not in saved]
    extra = [k for k in saved if k not in ours]
    if missing or extra:
        raise CheckpointError(f"holds another model: missing {missing[:3]}, unexpected {extra[:3]}")
    for key, tensor in ours.items():
        theirs = saved[key]
        if not isinstance(theirs, Tensor) or theirs.shape != tensor.shape:
            shape = tuple(theirs.shape) if isinstance(theirs, Tensor) else type(theirs).__name__
            raise CheckpointError(
                f"holds another model: {key} is {shape} in the checkpoint but "
                f"{tuple(tensor.shape)} here"
            )


def _check_groups(ours: list[dict[str, Any]], saved: Any) -> None:
    """Every numeric hyper-parameter of the saved groups (lr, betas' kin) is a finite number
    where ours is one: a string lr would fail only at the first step."""
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    if not isinstance(groups, list) or len(groups) != len(ours):
        raise CheckpointError("holds optimizer groups that do not match this run")
    for mine, theirs in zip(ours, groups, strict=True):
        if not isinstance(theirs, dict):
            raise CheckpointError("holds an optimizer group that is not a dict")
        for key, value in mine.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            got = theirs.get(key)
            if isinstance(got, bool) or not isinstance(got, int | float) or not math.isfinite(got):
                raise CheckpointError(f"holds optimizer {key} = {got!r}, not a finite number")


def _check_finite(saved: dict[str, Any]) -> None:
    """Refuse weights that are NaN or inf: training could only go on from garbage."""
    for key, tensor in saved.items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise CheckpointError(f"holds non-finite (NaN or inf) values in {key}; refused")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
