"""A run folder that cannot be mixed up: one process at a time (an exclusive ``flock`` on the
folder, naming its holder), the validated config stored beside the checkpoints as
``OUT/config.json``, and no temp file of an earlier, killed process left behind.

On ``--resume`` the config must equal the stored one except for :data:`MAY_CHANGE`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlopt._io import read_input, write_text_atomic
from dlopt.errors import CheckpointError, DataError
from dlopt.lab.config import RunConfig

MAY_CHANGE = (
    "name",
    "train.epochs",
    "train.device",
    "train.checkpoint_every_steps",
    "train.threads",  # may change the last bits of CPU reductions, never the run's meaning
    "search.n_trials",
)
CONFIG_FILE = "config.json"


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the folder itself for the run (no lock file: a refused run
    leaves the folder as it was); a second process gets a DataError naming the holder."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(
                f"is in use by another dlopt process (pid {_holder(fd)}); wait for it or "
                "choose another --out",
                source=out,
            ) from None
        for stale in out.glob(".*.tmp"):  # a killed writer's; ours are all finished
            stale.unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    """The pid holding a flock on `fd`'s inode, from /proc/locks (Linux); else "unknown"."""
    info = os.fstat(fd)
    inode = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == inode:
                    return fields[4]
    except OSError:
        pass
    return "unknown"


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def store_or_check_config(config: RunConfig, out: Path, *, resume: bool) -> bool:
    """Write the config beside a fresh run; on resume, refuse one that differs from it.

    A resumed run that has no stored config yet (an older run) gets none here: its checkpoint
    has not been read, and a refused checkpoint must leave the folder as it was. Returns True
    when the config is still to be written (call :func:`write_config` once it loaded)."""
    path = out / CONFIG_FILE
    if resume and not path.exists():
        return True
    if resume:
        check_stored_config(config, out)
    write_config(config, out)
    return False


def write_config(config: RunConfig, out: Path) -> None:
    path = out / CONFIG_FILE
    text = json.dumps(json.loads(config.model_dump_json()), indent=1)
    if not (path.is_file() and path.read_text(encoding="utf-8", errors="replace") == text):
        write_text_atomic(path, text)  # unchanged on a resume that changes nothing


def check_stored_config(config: RunConfig, out: Path) -> None:
    """On resume: refuse a config that differs from the one stored beside the run (read only)."""
    path = out / CONFIG_FILE
    ours = json.loads(config.model_dump_json())
    if path.exists():
        raw = read_input(path, CheckpointError, kind="stored config", max_bytes=1 << 20)
        try:
            stored = json.loads(raw)
        except ValueError:
            raise CheckpointError("not valid JSON", source=path) from None
        if not isinstance(stored, dict):
            raise CheckpointError("not a stored config", source=path)
        mine, theirs = _flat(ours), _flat(stored)
        differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        defaults = _flat(json.loads(RunConfig().model_dump_json()))
        differ = [
            k
            for k in differ
            if k not in MAY_CHANGE and not (k not in theirs and mine.get(k) == defaults.get(k))
        ]  # a key added to dlopt since the run was stored, at its default, changes nothing
        if differ:
            raise CheckpointError(
                f"was trained with another config: {', '.join(differ[:6])} differ"
                f"{' …' if len(differ) > 6 else ''} (only {', '.join(MAY_CHANGE)} may change "
                "on --resume)",
                source=out,
            )
