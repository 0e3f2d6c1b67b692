"""Atomic file writes: a temp file in the same folder, fsync, then ``os.replace``.

A kill at any instant leaves either the old file or the new one at the final path, never a
half-written file (RELIABILITY.md R3/R4, P2).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat as stat_module
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
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would make every output private
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


def check_writable(path: str | Path) -> None:
    """Fail now, before any long work, where `atomic_open(path)` would fail at the end: its
    folder cannot be made or written, or `path` is a folder (OSError or DloptError)."""
    path = Path(path)
    if path.is_dir():
        raise DloptError("is a folder; give a file name", source=path)
    for above in path.parents:  # mkdir would say only "File exists"
        if above.exists() and not above.is_dir():
            raise DloptError("is a file, so nothing can be written below it", source=above)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(probe)


def _umask() -> int:
    """The process umask (read by setting it, so set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


MAX_INPUT_BYTES = 1 << 30  # 1 GiB: a data file or checkpoint larger than this is refused


def read_input(
    path: Path, error: type[DloptError], *, kind: str, max_bytes: int | None = None
) -> bytes:
    """Read a user's file whole; every failure is an `error` naming the file (one line).

    Anything but a regular file (a FIFO, a device, a symlink to /dev/zero) is refused before it
    is opened, and no more than `max_bytes` (default :data:`MAX_INPUT_BYTES`) are ever read.
    """
    with open_input(path, error, kind=kind, max_bytes=max_bytes) as handle:
        return handle.read()


class BoundedReader:
    """A binary file's reads, refused with `error` once more than `limit` bytes came in;
    :meth:`peek` reads ahead without consuming."""

    def __init__(
        self, raw: IO[bytes], limit: int, error: type[DloptError], path: Path, kind: str
    ) -> None:
        self.raw, self.left, self.limit = raw, limit, limit
        self.error, self.path, self.kind = error, path, kind
        self._ahead = b""

    def peek(self, size: int) -> bytes:
        """The next `size` bytes (fewer at the end of the file), left to be read."""
        if len(self._ahead) < size:
            self._ahead += self._take(size - len(self._ahead))
        return self._ahead[:size]

    def read(self, size: int | None = -1) -> bytes:
        ahead = self._ahead
        if ahead:
            if size is not None and 0 <= size <= len(ahead):
                self._ahead = ahead[size:]
                return ahead[:size]
            self._ahead = b""
            return ahead + self.read(-1 if size is None or size < 0 else size - len(ahead))
        return self._take(self.left + 1 if size is None or size < 0 else size)

    def rewind(self) -> None:
        """Back to the start of the file, its whole limit to read again."""
        self.raw.seek(0)
        self.left, self._ahead = self.limit, b""

    def _take(self, size: int) -> bytes:
        data = self.raw.read(min(size, self.left + 1))
        self.left -= len(data)
        if self.left < 0:
            raise self.error(
                f"more than {self.limit} bytes; a {self.kind} may hold at most that",
                source=self.path,
            )
        return data


@contextlib.contextmanager
def open_input(
    path: Path,
    error: type[DloptError],
    *,
    kind: str,
    max_bytes: int | None = None,
) -> Iterator[BoundedReader]:
    """:func:`read_input`'s checks, then the file as a :class:`BoundedReader`. An OSError while
    it is read is an `error` too."""
    limit = MAX_INPUT_BYTES if max_bytes is None else max_bytes
    try:
        info = path.stat()
        if stat_module.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat_module.S_ISREG(info.st_mode):
            raise error(f"not a regular file (a FIFO, device or socket); not a {kind}", source=path)
        if info.st_size > limit:
            raise error(f"{info.st_size} bytes; a {kind} may hold at most {limit}", source=path)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat_module.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped meanwhile
                raise error(f"not a regular file; not a {kind}", source=path)
            yield BoundedReader(handle, limit, error, path, kind)
    except FileNotFoundError:
        raise error("no such file", source=path) from None
    except IsADirectoryError:
        raise error(f"is a folder, not a {kind}", source=path) from None
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", source=path) from None
