"""Atomic file writes: a temp file in the same folder, fsync, then ``os.replace``.

A kill at any instant leaves either the old file or the new one at the final path, never a
half-written file (RELIABILITY.md R3/R4, P2).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from dlopt.errors import DloptError


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temp file beside `path`; on success fsync it and rename it onto `path`.

    On any exception the temp file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_with_atomic(path: str | Path, writer: Callable[[IO[bytes]], None]) -> None:
    """Let `writer` fill a binary handle, then move the result onto `path` atomically."""
    with atomic_open(path, "wb") as handle:
        writer(handle)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_input(
    path: Path, error: type[DloptError], *, kind: str, max_bytes: int | None = None
) -> bytes:
    """Read a user's file whole; every failure is an `error` naming the file (one line)."""
    try:
        if max_bytes is not None and (size := path.stat().st_size) > max_bytes:
            raise error(f"{size} bytes; a {kind} may hold at most {max_bytes}", source=path)
        return path.read_bytes()
    except FileNotFoundError:
        raise error("no such file", source=path) from None
    except IsADirectoryError:
        raise error(f"is a folder, not a {kind}", source=path) from None
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", source=path) from None
