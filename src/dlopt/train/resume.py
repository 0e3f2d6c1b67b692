"""What a checkpoint must agree with before a run resumes from it, and the RNG states it holds.

Every check raises :class:`CheckpointError` naming the first difference, so a refused resume
says why in one line.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor

from dlopt.data.dataset import Dataset
from dlopt.errors import CheckpointError
from dlopt.train.checkpoint import FORMAT
from dlopt.train.state import TrainState
from dlopt.train.totals import EpochTotals

if TYPE_CHECKING:
    from dlopt.train.trainer import Trainer


def _callback_keys(trainer: Trainer) -> list[str]:
    seen: dict[str, int] = {}
    keys = []
    for cb in trainer.callbacks:
        name = type(cb).__name__
        keys.append(f"{name}#{seen.get(name, 0)}")
        seen[name] = seen.get(name, 0) + 1
    return keys


def trainer_state(trainer: Trainer) -> dict[str, Any]:
    """See :meth:`Trainer.state_dict`."""
    s = trainer.state
    finished_stop = s.should_stop and s.batch == 0 and not s.interrupted and not s.diverged
    state = s.to_dict() | {"stop_reason": s.stop_reason if finished_stop else None}
    source = trainer._source
    return {
        "format": FORMAT,
        "kind": "trainer",
        "version": 1,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": None if trainer.scheduler is None else trainer.scheduler.state_dict(),
        "callbacks": {
            k: cb.state_dict()
            for k, cb in zip(_callback_keys(trainer), trainer.callbacks, strict=True)
        },
        "state": state,
        "accumulators": trainer.totals.state_dict(),
        "rng": rng_states(),
        "source": {} if source is None else source.state_dict(at_epoch_start=s.batch == 0),
        "precision": trainer._precision.state_dict(),
        "swa": None if trainer.swa is None else trainer.swa.state_dict(),
        "meta": {
            "seed": trainer.seed,
            "batch_size": trainer.batch_size,
            "data": data_fingerprint(trainer),
            "optimizer": type(trainer.optimizer).__name__,
            "threads": torch.get_num_threads(),
            "torch": str(torch.__version__),
            "world_size": world_size(trainer),  # distributed: the shards depend on it
        },
    }


def world_size(trainer: Trainer) -> int:
    return 1 if trainer.distributed is None else trainer.distributed.world_size


@contextlib.contextmanager
def _as_checkpoint_error() -> Iterator[None]:
    """A payload of the wrong shape (a missing key, a list for a dict, …) as one CheckpointError
    line naming the first problem."""
    try:
        yield
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise CheckpointError(f"does not match this run: {reason}") from None


def check_payload(
    payload: Any, model_state: dict[str, Tensor], groups: list[dict[str, Any]]
) -> None:
    """The checks of :func:`restore_trainer` that need no optimizer, data or trainer: the
    model's keys, shapes and finiteness, the groups' numbers (`groups`: what this run's
    optimizer will hold, e.g. ``{"lr": 0.01, "weight_decay": 0.0}`` per group), the position,
    the accumulators and the RNG states. The lab runs them before it builds the optimizer,
    whose first construction imports ``torch._dynamo`` (seconds), so a bad checkpoint is
    refused at once; restoring repeats them in full."""
    with _as_checkpoint_error():
        if not isinstance(payload, dict):
            raise CheckpointError(f"holds a {type(payload).__name__}, not a dict")
        check_model_matches(model_state, payload["model"])
        check_finite(payload["model"])
        check_groups(groups, payload["optimizer"])
        state = TrainState()
        state.load_dict(payload["state"])
        _check_position(state, too_far=False)
        EpochTotals.from_state_dict(payload["accumulators"], torch.device("cpu"))
        rng = payload["rng"]["torch"]
        ours = torch.get_rng_state()
        if not isinstance(rng, Tensor) or rng.dtype != ours.dtype or rng.shape != ours.shape:
            raise CheckpointError("holds a torch RNG state of the wrong kind; refused")


def _check_position(s: TrainState, *, too_far: bool) -> None:
    if min(s.epoch, s.batch, s.step) < 0 or too_far:
        raise CheckpointError(
            f"holds an impossible position (epoch {s.epoch}, batch {s.batch}, "
            f"step {s.step}); refused"
        )


def restore_trainer(trainer: Trainer, payload: dict[str, Any]) -> None:
    """See :meth:`Trainer.load_state_dict`."""
    with _as_checkpoint_error():
        meta = payload["meta"]
        _check_meta(trainer, meta)
        check_model_matches(trainer.model.state_dict(), payload["model"])
        check_finite(payload["model"])
        trainer.model.load_state_dict(payload["model"], strict=True)
        check_groups(trainer.optimizer.param_groups, payload["optimizer"])
        trainer.optimizer.load_state_dict(payload["optimizer"])
        if trainer.scheduler is not None:
            trainer.scheduler.load_state_dict(payload["scheduler"])
        saved_callbacks = payload["callbacks"]
        for key, cb in zip(_callback_keys(trainer), trainer.callbacks, strict=True):
            if key in saved_callbacks:
                cb.load_state_dict(saved_callbacks[key])
        if trainer.swa is not None:
            if payload.get("swa") is None:
                raise CheckpointError("was saved without SWA but this run averages weights")
            trainer.swa.load_state_dict(payload["swa"])
        trainer._precision.load_state_dict(payload.get("precision") or {})
        if trainer._source is not None:
            trainer._source.load_state_dict(payload.get("source") or {})
        trainer.state.load_dict(payload["state"])
        _restore_accumulators(trainer, payload["accumulators"])
        set_rng_states(payload["rng"])
    if trainer.state.stop_reason:
        trainer.state.should_stop = True  # the saved run had already stopped for good
    if meta.get("threads") != torch.get_num_threads():
        logging.getLogger("dlopt").warning(
            "checkpoint was written with %s threads, this process uses %s: results may "
            "differ in the last bits",
            meta.get("threads"),
            torch.get_num_threads(),
        )


def _check_meta(trainer: Trainer, meta: dict[str, Any]) -> None:
    expected = {
        "seed": trainer.seed,
        "batch_size": trainer.batch_size,
        "optimizer": type(trainer.optimizer).__name__,
    }
    if trainer._train_xy is not None:
        expected["data"] = data_fingerprint(trainer)
    for key, value in expected.items():
        if meta[key] != value:
            raise CheckpointError(
                f"was saved with {key} {meta[key]!r} but this run has "
                f"{value!r}; refusing to resume a different run"
            )
    if meta.get("world_size", 1) != world_size(trainer):  # distributed
        raise CheckpointError(
            f"was saved by {meta.get('world_size', 1)} processes but this run has "
            f"{world_size(trainer)}; resume with as many (the batches' shards, and so the "
            "steps, differ)"
        )


def _restore_accumulators(trainer: Trainer, acc: dict[str, Any]) -> None:
    trainer.totals = EpochTotals.from_state_dict(acc, trainer._device_dtype()[0])
    s = trainer.state
    sized = trainer._source is None or trainer._source.batches_per_epoch > 0
    _check_position(s, too_far=sized and s.batch > max(s.batches_per_epoch, 1))


def check_model_matches(ours: dict[str, Tensor], saved: Any) -> None:
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


def check_groups(ours: list[dict[str, Any]], saved: Any) -> None:
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


def check_finite(saved: dict[str, Any]) -> None:
    """Refuse weights that are NaN or inf: training could only go on from garbage."""
    for key, tensor in saved.items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise CheckpointError(f"holds non-finite (NaN or inf) values in {key}; refused")


def rng_states() -> dict[str, Any]:
    """torch (CPU and every CUDA device), NumPy and Python RNG states, as plain types."""
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [str(np_state[0]), np_state[1].tolist(), *map(_plain, np_state[2:])],
        "python": random.getstate(),
    }


def set_rng_states(rng: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    name, keys, *rest = rng["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    random.setstate(_tuples(rng["python"]))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def fingerprint(train_xy: tuple[Tensor, Tensor] | None) -> str:
    """SHA-256 of in-memory training data, for the resume check; "" when not in memory."""
    if train_xy is None:
        return ""
    X, y = train_xy
    return Dataset(X.cpu(), y.cpu(), "regression", "train").fingerprint()


def data_fingerprint(trainer: Trainer) -> str:
    """SHA-256 of the in-memory training data ("" for a loader), hashed once per fit."""
    if trainer._fingerprint is None:
        trainer._fingerprint = fingerprint(trainer._train_xy)
    return trainer._fingerprint
