"""Checkpoints that survive SIGKILL, refuse code, and detect any flipped byte.

Layout beside ``checkpoint.pt``: ``checkpoint.prev.pt`` (the one before) and
``checkpoint.pt.sha256`` (the SHA-256 of both, newest first). A save goes

    1. serialize in memory, hash it            (nothing on disk changes)
    2. rewrite the sidecar with {new, current}  (atomic)
    3. rename checkpoint.pt → checkpoint.prev.pt
    4. write the new file to a temp name, fsync, rename → checkpoint.pt

so at every instant at least one file on disk matches a hash in the sidecar: a kill leaves a
loadable checkpoint, and a corrupted file is never used (RELIABILITY S4, R3–R5). Loading always
passes ``weights_only=True`` explicitly: pickled code is refused even with
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` set (S1).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dlopt._io import read_input, sha256_file, write_bytes_atomic, write_text_atomic
from dlopt._validation import check_choice, check_positive_int
from dlopt.errors import CheckpointError
from dlopt.train.callbacks import Callback, monitored

if TYPE_CHECKING:
    from dlopt.train.trainer import Trainer

log = logging.getLogger("dlopt")
FORMAT = "dlopt-checkpoint"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def previous_path(path: Path) -> Path:
    return path.with_name(path.stem + ".prev" + path.suffix)


def _accepted_hashes(path: Path) -> list[str]:
    try:
        text = read_input(_sidecar(path), CheckpointError, kind="sidecar", max_bytes=4096)
        return text.decode("ascii").split()
    except (CheckpointError, UnicodeDecodeError):
        return []


# (size, mtime_ns, SHA-256) of each file this process wrote: a save verifies the current
# checkpoint before rotating it, and need not re-read the file it wrote one step ago
_WRITTEN: dict[Path, tuple[int, int, str]] = {}


def _hash_of(path: Path) -> str:
    stat = path.stat()
    known = _WRITTEN.get(path.resolve())
    if known is not None and known[:2] == (stat.st_size, stat.st_mtime_ns):
        return known[2]
    return sha256_file(path)  # changed under us, or never ours: read it


def save_checkpoint(
    payload: dict[str, Any], path: str | Path, *, keep_previous: bool = True
) -> str:
    """Save `payload` (tensors, numbers, strings, lists, dicts) at `path`; return its SHA-256."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(payload, buffer)  # a failure here (ENOSPC, a bad object) touches no file
    data = buffer.getvalue()
    new = hashlib.sha256(data).hexdigest()
    accepted = _accepted_hashes(path)
    previous = previous_path(path)
    kept: str | None = None  # the hash of the file that will sit at `previous` afterwards
    rotate = False
    if keep_previous and path.is_file() and (current := _hash_of(path)) in accepted:
        kept, rotate = current, True
    elif keep_previous and previous.is_file() and (older := _hash_of(previous)) in accepted:
        kept = older  # the newest file is corrupt: keep the valid previous one, drop the newest
    write_text_atomic(_sidecar(path), new + "\n" + (f"{kept}\n" if kept else ""))
    if rotate:
        os.replace(path, previous)  # same file, new name: its (size, mtime, hash) moves along
        moved = _WRITTEN.pop(path.resolve(), None)
        if moved is not None:
            _WRITTEN[previous.resolve()] = moved
    write_bytes_atomic(path, data)
    stat = path.stat()
    _WRITTEN[path.resolve()] = (stat.st_size, stat.st_mtime_ns, new)
    return new


def _load_verified(path: Path, accepted: list[str]) -> dict[str, Any]:
    data = read_input(path, CheckpointError, kind="checkpoint")
    if not accepted:
        raise CheckpointError(
            "no SHA-256 sidecar (.sha256) beside it; refusing an unverified checkpoint", source=path
        )
    if hashlib.sha256(data).hexdigest() not in accepted:
        raise CheckpointError("SHA-256 mismatch: the file is corrupt or was changed", source=path)
    return load_payload(io.BytesIO(data), source=path)


def load_payload(stream: io.BytesIO | Path, *, source: str | Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with every failure turned into a CheckpointError."""
    try:
        payload = torch.load(stream, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, zip errors, …
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            reason = "holds pickled code or objects that are not weights; refused"
        raise CheckpointError(
            f"not a loadable checkpoint ({reason[:200]})", source=source
        ) from None
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"expected a dict of state, found {type(payload).__name__}", source=source
        )
    return payload


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], Path]:
    """The newest valid checkpoint at `path` (else its previous one, with a warning).

    Raises CheckpointError when neither is valid: a resume never silently starts afresh.
    """
    path = Path(path)
    accepted = _accepted_hashes(path)
    problems = []
    for candidate in (path, previous_path(path)):
        if not candidate.exists():
            problems.append(f"{candidate.name}: missing")
            continue
        try:
            payload = _load_verified(candidate, accepted)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        if payload.get("format") != FORMAT:
            problems.append(f"{candidate}: not a dlopt checkpoint (no format tag)")
            continue
        if candidate != path:
            log.warning("%s; resuming from the previous checkpoint %s", problems[0], candidate)
        return payload, candidate
    if not path.exists() and not previous_path(path).exists():
        raise CheckpointError("no checkpoint to resume from", source=path)
    raise CheckpointError("no valid checkpoint: " + "; ".join(problems), source=path)


class Checkpoint(Callback):
    """Save the whole resumable run to ``folder/checkpoint.pt`` and the final model to best.pt.

    Saves every `every_steps` optimizer steps (0: never mid-epoch), at the end of every
    `every_epochs`-th epoch, and at the step where an interrupt (SIGINT/SIGTERM) arrived. Never
    saves after a non-finite loss, so the last good checkpoint stays.

    best.pt holds the final model; with `monitor` (any logged metric, e.g. ``val_f1_macro``
    with ``mode="max"``) it holds the model of the epoch where `monitor` was best instead.
    """

    order = 100  # after every other callback has updated the state it saves

    def __init__(
        self,
        folder: str | Path,
        *,
        every_steps: int = 0,
        every_epochs: int = 1,
        save_best: bool = True,
        monitor: str | None = None,
        mode: str = "min",
    ) -> None:
        self.folder = Path(folder)
        self.monitor = monitor
        self.sign = check_choice("mode", mode, {"min": 1.0, "max": -1.0}, caller="Checkpoint")
        self.best = math.inf
        self.every_steps = check_positive_int(
            "every_steps", every_steps, caller="Checkpoint", minimum=0
        )
        self.every_epochs = check_positive_int("every_epochs", every_epochs, caller="Checkpoint")
        self.save_best = save_best

    @property
    def path(self) -> Path:
        return self.folder / "checkpoint.pt"

    def on_batch_end(self, trainer: Trainer) -> None:
        state = trainer.state
        if state.interrupted or (self.every_steps and state.step % self.every_steps == 0):
            save_checkpoint(trainer.state_dict(), self.path)

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.save_best and self.monitor is not None:  # before saving: the state holds best
            value = self.sign * monitored(trainer, self.monitor, "Checkpoint")
            if math.isfinite(value) and value < self.best:
                self.best = value
                self._save_model(trainer)
        if (
            trainer.state.epoch % self.every_epochs == 0
            or trainer.state.should_stop
            or (trainer.state.epoch >= trainer.state.max_epochs)
        ):
            save_checkpoint(trainer.state_dict(), self.path)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.monitor is not None and math.isfinite(self.best):
            return  # best.pt holds the best epoch's model

        finite = all(
            bool(t.isfinite().all())
            for t in trainer.model.state_dict().values()
            if t.is_floating_point()
        )
        if self.save_best and not trainer.state.interrupted and finite:  # never NaN weights
            self._save_model(trainer)

    def _save_model(self, trainer: Trainer) -> None:
        save_checkpoint(
            {"format": FORMAT, "kind": "model", "model": trainer.model.state_dict()},
            self.folder / "best.pt",
            keep_previous=False,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best} if self.monitor is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.monitor is not None and "best" in state:
            self.best = float(state["best"])
