"""The malformed-input corpus: 8 kinds × 8 variants, each with the CLI call that reads it."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlopt.train import save_checkpoint

GOOD_CONFIG = '[data]\nname = "wine"\n[model]\nhidden = [8]\n[train]\nepochs = 1\n'


def idx(array: np.ndarray, code: int = 0x08) -> bytes:
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    return (
        struct.pack(">HBB", 0, code, array.ndim)
        + dims
        + array.astype(array.dtype.newbyteorder(">")).tobytes()
    )


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    write: Callable[[Path], Path]  # writes the file(s) into a folder; returns the bad file
    argv: Callable[[Path, Path], list[str]]  # (bad file, folder) → CLI arguments


def _file(name: str, data: bytes | str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    return write


def _show(path: Path, folder: Path) -> list[str]:
    return ["datasets", "show", str(path)]


def _train(path: Path, folder: Path) -> list[str]:
    return ["train", str(path), "--out", str(folder / "out")]


IMAGES = np.arange(3 * 2 * 2, dtype=np.uint8).reshape(3, 2, 2)
LABELS = np.array([0, 1, 2], dtype=np.uint8)
X, Y = np.ones((4, 2)), np.array([0, 1, 0, 1])
CIFAR_RECORD = bytes([3]) + bytes(3072)


def _with_good_labels(name: str, data: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / "t-labels-idx1-ubyte").write_bytes(idx(LABELS))
        return _file(name, data)(folder)

    return write


def _with_good_images(data: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / "t-images-idx3-ubyte").write_bytes(idx(IMAGES))
        return _file("t-labels-idx1-ubyte", data)(folder)

    return write


def _show_images(path: Path, folder: Path) -> list[str]:
    return ["datasets", "show", str(folder / "t-images-idx3-ubyte")]


def _checkpoint(make: Callable[[Path], None]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / "run.toml").write_text(GOOD_CONFIG)
        (folder / "out").mkdir()
        make(folder / "out")
        return folder / "out" / "checkpoint.pt"

    return write


def _resume(path: Path, folder: Path) -> list[str]:
    return ["train", str(folder / "run.toml"), "--out", str(folder / "out"), "--resume"]


def _raw(data: bytes) -> Callable[[Path], None]:
    return lambda out: (out / "checkpoint.pt").write_bytes(data)


def _hashed(obj) -> Callable[[Path], None]:
    return lambda out: save_checkpoint(obj, out / "checkpoint.pt")


def _damaged(how: str) -> Callable[[Path], None]:
    def make(out: Path) -> None:
        save_checkpoint(
            {"format": "dlopt-checkpoint", "w": torch.randn(200)}, out / "checkpoint.pt"
        )
        data = bytearray((out / "checkpoint.pt").read_bytes())
        data = data[: len(data) // 2] if how == "cut" else data
        if how == "flip":
            data[len(data) // 2] ^= 1
        (out / "checkpoint.pt").write_bytes(bytes(data) if how != "empty" else b"")

    return make


def _foreign_run(out: Path) -> None:
    from dlopt.lab.config import parse_config
    from dlopt.lab.run import train_run

    config = parse_config(
        {"data": {"name": "wine"}, "model": {"hidden": [16, 16]}, "train": {"epochs": 1}}
    )
    train_run(config, out, quiet=True)  # a real checkpoint of another model shape


def corpus() -> list[Case]:
    toml = {
        "syntax": "[optimizer]\nlr = = 1\n",
        "unknown-key": "[optimizer]\nlrr = 0.1\n",
        "string-number": '[optimizer]\nlr = "1e-3"\n',
        "zero-lr": "[optimizer]\nlr = 0\n",
        "nan": "[optimizer]\nlr = nan\n",
        "duplicate": "[train]\nepochs = 1\nepochs = 2\n",
        "list-for-table": "optimizer = [1, 2]\n",
        "not-utf8": b"\xff\xfe\x00[train]",
    }
    yaml = {
        "plain": "optimizer:\n  lr: 1e-3\n",
        "python-object": "!!python/object/apply:builtins.open ['marker', 'w']\n",
        "bool-no": "shuffle: no\n",
        "alias-bomb": "a: &a [1,1,1]\nb: &b [*a,*a,*a]\nc: [*b,*b,*b]\n",
        "tabs": "a:\n\t- 1\n",
        "empty": "",
        "deep": "[" * 1000 + "]" * 1000,
        "binary": b"\x00\x01\x02",
    }
    csv = {
        "empty": "",
        "header-only": "a,b\n",
        "ragged": "a,b\n1,2\n3\n",
        "text": "a,b\nx,1\n",  # a word as a label is a class name; as a feature, refused
        "nan": "a,b\n1,nan\n",
        "inf": "a,b\n1,2\ninf,1\n",
        "negative-label": "a,b\n1,-3\n",
        "one-column": "a\n1\n",
    }
    npz_cases = {
        "object": npz(X=np.array([None, 1], dtype=object), y=np.zeros(2)),
        "nan": npz(X=np.array([[np.nan, 1.0]]), y=np.zeros(1)),
        "length": npz(X=X, y=Y[:3]),
        "no-y": npz(X=X),
        "garbage": b"not a zip at all",
        "truncated": npz(X=X, y=Y)[:200],
        "flat-X": npz(X=np.ones(4), y=Y),
        "complex": npz(X=np.ones((4, 2), dtype=complex), y=Y),
    }
    good_images = idx(IMAGES)
    images = {
        "magic": b"\x12\x34" + good_images[2:],
        "short": good_images[:-2],
        "long": good_images + b"\x00",
        "header": good_images[:7],
        "huge": struct.pack(">HBBIII", 0, 8, 3, 2**31 - 1, 28, 28),
        "dtype": struct.pack(">HBB", 0, 0x42, 3) + good_images[4:],
        "gz-garbage": b"\x1f\x8b\x08\x00garbage",
        "count": idx(IMAGES[:2]),
    }
    labels = {
        "magic": b"\x00\x00\x08\x07" + idx(LABELS)[4:],
        "short": idx(LABELS)[:-1],
        "count": idx(LABELS[:2]),
        "two-d": idx(LABELS.reshape(3, 1)),
        "float": idx(np.array([0.0, np.nan, 1.0], dtype=np.float32), code=0x0D),
        "negative": idx(np.array([0, -1, 1], dtype=np.int8), code=0x09),
        "empty": idx(np.zeros(0, dtype=np.uint8)),
        "huge": struct.pack(">HBBI", 0, 8, 1, 2**31),
    }
    cifar = {
        "empty": b"",
        "partial": CIFAR_RECORD[:-1],
        "label-200": bytes([200]) + bytes(3072),
        "label-10": CIFAR_RECORD + bytes([10]) + bytes(3072),
        "one-byte": b"\x01",
        "half": CIFAR_RECORD * 2 + CIFAR_RECORD[:1500],
        "no-label": bytes(3072),
        "ff-labels": b"\xff" * 3073 * 2,
    }
    checkpoints = {
        "garbage": _raw(b"garbage"),
        "empty": _damaged("empty"),
        "truncated": _damaged("cut"),
        "flipped": _damaged("flip"),
        "list": _hashed([1, 2, 3]),
        "no-format": _hashed({"model": {}}),
        "pickle": _hashed_bytes(pickle.dumps({"format": "dlopt-checkpoint"})),
        "other-model": _foreign_run,
    }
    cases = [Case("toml", k, _file(f"{k}.toml", v), _train) for k, v in toml.items()]
    cases += [Case("yaml", k, _file(f"{k}.yaml", v), _train) for k, v in yaml.items()]
    cases += [Case("csv", k, _file(f"{k}.csv", v), _show) for k, v in csv.items()]
    cases += [Case("npz", k, _file(f"{k}.npz", v), _show) for k, v in npz_cases.items()]
    cases += [
        Case("idx-images", k, _with_good_labels("t-images-idx3-ubyte", v), _show_images)
        for k, v in images.items()
    ]
    cases += [Case("idx-labels", k, _with_good_images(v), _show_images) for k, v in labels.items()]
    cases += [Case("cifar", k, _file(f"{k}.bin", v), _show) for k, v in cifar.items()]
    cases += [Case("checkpoint", k, _checkpoint(v), _resume) for k, v in checkpoints.items()]
    return cases


def _hashed_bytes(data: bytes) -> Callable[[Path], None]:
    def make(out: Path) -> None:
        import hashlib

        (out / "checkpoint.pt").write_bytes(data)
        (out / "checkpoint.pt.sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")

    return make


def zip_members(data: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


_ = gzip  # gzip variants are written as raw bytes above
