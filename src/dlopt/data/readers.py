"""Readers for the user's own files: CSV, NPY/NPZ, MNIST IDX (plain or .gz), CIFAR-10 binary.

Every reader validates before it allocates: declared sizes are checked against the file's size,
so a header that claims 2³¹ items fails at once. Every problem is a :class:`DataError` naming the
file (and the line, column or byte offset where it helps); nothing else escapes.
"""

from __future__ import annotations

import gzip
import io
import math
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dlopt._io import read_input
from dlopt.data.dataset import Dataset, make_dataset
from dlopt.data.tables import read_csv
from dlopt.errors import DataError

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CIFAR_RECORD = 1 + 3 * 32 * 32
_DEFLATE_RATIO = 1032  # deflate expands at most ~1032:1


def _open_bytes(path: Path, max_bytes: int | None = None) -> bytes:
    return read_input(path, DataError, kind="data file", max_bytes=max_bytes)


def _npy_header(handle: io.BufferedIOBase | zipfile.ZipExtFile, size: int, source: str) -> int:
    """Check an .npy header against the bytes that follow it; return the declared item count."""
    try:
        version = np.lib.format.read_magic(handle)
        reader = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }.get(version)
        if reader is None:
            raise DataError(f"unsupported .npy version {version}", source=source)
        shape, _fortran, dtype = reader(handle)
    except DataError:
        raise
    except Exception as exc:  # numpy raises ValueError/KeyError/SyntaxError on bad headers
        raise DataError(f"not a valid .npy array ({exc})", source=source) from None
    if dtype.hasobject:
        raise DataError("holds Python objects (pickles); refused", source=source)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    expected = count * dtype.itemsize
    available = size - handle.tell()
    if expected != available:
        raise DataError(
            f"header declares {expected} bytes of data but {available} follow", source=source
        )
    return count


def _load_npy_checked(data: bytes, source: str) -> np.ndarray:
    _npy_header(io.BytesIO(data), len(data), source)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:
        raise DataError(f"not a valid .npy array ({exc})", source=source) from None


def read_npy(path: str | Path, *, name: str | None = None) -> Dataset:
    """A 2-D numeric array whose last column is the label."""
    path = Path(path)
    array = _load_npy_checked(_open_bytes(path), str(path))
    if array.ndim != 2 or array.shape[1] < 2:
        raise DataError(
            f"must be a 2-D array (samples × features+label); got shape {array.shape}", source=path
        )
    return make_dataset(array[:, :-1], array[:, -1], name=name or path.name, source=str(path))


def read_npz(path: str | Path, *, name: str | None = None) -> Dataset:
    """An .npz archive with arrays ``X`` (samples first) and ``y``."""
    path = Path(path)
    raw = _open_bytes(path)
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        members = {info.filename: info for info in archive.infolist()}
    # NotImplementedError: a member claims a zip version zipfile cannot read
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise DataError(f"not a valid .npz archive ({exc})", source=path) from None
    arrays = {}
    for key in ("X", "y"):
        info = members.get(f"{key}.npy")
        if info is None:
            found = ", ".join(sorted(m.removesuffix(".npy") for m in members)) or "none"
            raise DataError(f"has no array {key!r} (arrays: {found})", source=path)
        if info.file_size > 8 * len(raw) + (64 << 20) and info.compress_type != zipfile.ZIP_STORED:
            raise DataError(f"array {key!r} declares an implausible size", source=path)
        try:
            data = archive.read(info)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError) as exc:
            raise DataError(f"array {key!r} is damaged ({exc})", source=path) from None
        arrays[key] = _load_npy_checked(data, f"{path}[{key}]")
    return make_dataset(arrays["X"], arrays["y"], name=name or path.name, source=str(path))


def read_idx(path: str | Path) -> np.ndarray:
    """One MNIST IDX file (plain, or gzip when the name ends in .gz) as a numpy array."""
    path = Path(path)
    raw = _open_bytes(path)
    if path.suffix == ".gz":
        raw = _gunzip_idx(raw, path)
    if len(raw) < 4:
        raise DataError(f"too short for an IDX header ({len(raw)} bytes)", source=path)
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _IDX_DTYPES or not 1 <= ndim <= 4:
        raise DataError(f"bad IDX magic number 0x{raw[:4].hex()}", source=path, where="@0")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError("truncated IDX header", source=path, where=f"@{len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow to 0
    if expected != len(raw) - head:
        raise DataError(
            f"header declares {dims} ({expected} bytes) but {len(raw) - head} bytes follow",
            source=path,
            where=f"@{head}",
        )
    if 0 in dims:
        raise DataError(f"no samples (dimensions {dims})", source=path)
    return (
        np.frombuffer(raw, dtype=dtype, offset=head).reshape(dims).astype(dtype.newbyteorder("="))
    )


def _gunzip_idx(raw: bytes, path: Path) -> bytes:
    """Decompress in bounded chunks, stopping at the size the IDX header declares (no gzip bomb)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            head = stream.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _IDX_DTYPES:
                return head  # read_idx reports the bad magic number
            head += stream.read(4 * head[3])
            ndim = (len(head) - 4) // 4
            dims = struct.unpack(f">{ndim}I", head[4 : 4 + 4 * ndim])
            limit = math.prod(dims) * np.dtype(_IDX_DTYPES[head[2]]).itemsize
            if limit > _DEFLATE_RATIO * len(raw) + 4096:  # more than deflate can produce
                raise DataError(
                    f"header declares {dims} ({limit} bytes), more than {len(raw)} compressed "
                    "bytes can hold",
                    source=path,
                )
            chunks, total = [head], 0
            while total <= limit and (block := stream.read(min(1 << 20, limit + 1 - total))):
                chunks.append(block)
                total += len(block)
            return b"".join(chunks)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"not a valid gzip file ({exc})", source=path) from None


def _idx_pair(path: Path, labels: str | Path | None) -> Path:
    if labels is not None:
        return Path(labels)
    for images, found in (("images-idx3", "labels-idx1"), ("images", "labels")):
        if images in path.name:
            candidate = path.with_name(path.name.replace(images, found))
            if candidate.exists():
                return candidate
    raise DataError(
        "IDX images need their labels file (same name with 'labels-idx1', or --labels PATH)",
        source=path,
    )


def read_idx_dataset(path: str | Path, labels: str | Path | None = None) -> Dataset:
    """MNIST-style images + labels IDX pair; pixels scaled to [0, 1] when stored as bytes."""
    path = Path(path)
    images = read_idx(path)
    label_path = _idx_pair(path, labels)
    targets = read_idx(label_path)
    if targets.ndim != 1:
        raise DataError(
            f"labels must be a 1-D IDX file; got shape {targets.shape}", source=label_path
        )
    if not np.issubdtype(targets.dtype, np.integer):
        raise DataError(
            f"labels must be integers; the file stores {targets.dtype}", source=label_path
        )
    if len(targets) and targets.min() < 0:
        raise DataError(f"class labels must be >= 0; found {int(targets.min())}", source=label_path)
    if len(targets) != len(images):
        raise DataError(
            f"{len(images)} images but {len(targets)} labels in {label_path.name}", source=path
        )
    X = images.astype(np.float32)
    if images.dtype == np.uint8:
        X /= 255.0
    if X.ndim == 3:
        X = X[:, None]  # (n, 1, h, w): one channel
    return make_dataset(
        X, targets.astype(np.int64), name=path.name, task="classification", source=str(path)
    )


def read_cifar_bin(path: str | Path) -> Dataset:
    """A CIFAR-10 binary batch: records of 1 label byte (0–9) + 3×32×32 pixel bytes."""
    path = Path(path)
    raw = _open_bytes(path)
    if not raw or len(raw) % _CIFAR_RECORD:
        raise DataError(
            f"size {len(raw)} is not a positive multiple of the {_CIFAR_RECORD}-byte "
            "CIFAR-10 record",
            source=path,
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DataError(
            f"label {labels[bad]} out of range 0–9 (record {bad})",
            source=path,
            where=f"@{bad * _CIFAR_RECORD}",
        )
    X = records[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    return make_dataset(
        X, labels, name=path.name, task="classification", n_classes=10, source=str(path)
    )


def _is_idx(path: Path) -> bool:
    name = path.name.removesuffix(".gz")
    return name.endswith(("-ubyte", ".idx")) or "idx" in name.split(".")[-1]


def read_file(
    path: str | Path,
    *,
    label: str | None = None,
    labels: str | Path | None = None,
    task: str = "auto",
) -> Dataset:
    """Read a data file, its format following its name (see the module docstring)."""
    path = Path(path)
    readers: dict[str, Callable[[], Dataset]] = {
        ".csv": lambda: read_csv(path, label, task=task),
        ".npy": lambda: read_npy(path),
        ".npz": lambda: read_npz(path),
        ".bin": lambda: read_cifar_bin(path),
    }
    if path.suffix in readers:
        return readers[path.suffix]()
    if _is_idx(path):
        return read_idx_dataset(path, labels)
    raise DataError(
        "unknown data format; use .csv, .npy, .npz, MNIST IDX (*-ubyte, *.idx, "
        "optionally .gz) or CIFAR-10 .bin",
        source=path,
    )
