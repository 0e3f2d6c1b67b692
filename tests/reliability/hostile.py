"""Issue 15's corpus: malformed and hostile inputs for every entry point (configs, data files,
checkpoints, CLI arguments, storage URLs, run folders), each a real `dlopt` process under a
4 GiB address-space limit and a 10 s timeout.

A case writes its files into an empty folder and returns the CLI arguments; it may start from a
copy of a finished run (`RUN`) or a finished ensemble (`ENSEMBLE`). Every case must exit 2 with
one `error:` line, no traceback, and leave every file of its folder as it was.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

BASE = '[data]\nname = "digits"\ntrain_size = 150\n[model]\nhidden = [8]\n[train]\nepochs = 1\n'
SEARCH = BASE + '[search.space]\n"optimizer.lr" = {low = 1e-3, high = 1e-2, log = true}\n'


@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[Path], list[str]]  # writes into a folder; returns the CLI arguments
    start_from: str = ""  # "", "run" or "ensemble": a finished run copied into the folder


def _config(text: str, name: str = "c.toml") -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        (folder / name).write_text(text)
        return ["train", str(folder / name), "--out", str(folder / "out"), "--quiet"]

    return setup


def _search(text: str, *extra: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        (folder / "s.toml").write_text(text)
        return ["search", str(folder / "s.toml"), "--out", str(folder / "out"), *extra]

    return setup


def _show(name: str, data: bytes | Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        if callable(data):
            data(folder / name)
        else:
            (folder / name).write_bytes(data)
        return ["datasets", "show", str(folder / name)]

    return setup


def _train_on(name: str, data: bytes | Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        _show(name, data)(folder)
        text = BASE.replace('name = "digits"', f'name = "{folder / name}"').replace(
            "train_size = 150\n", ""
        )
        (folder / "c.toml").write_text(text)
        return ["train", str(folder / "c.toml"), "--out", str(folder / "out"), "--quiet"]

    return setup


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _idx(dims: tuple[int, ...], payload: bytes = b"", code: int = 0x08) -> bytes:
    return struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _resume(folder: Path, config: str | None = None) -> list[str]:
    path = folder / "c.toml"
    if config is not None:
        path.write_text(config)
    return ["train", str(path), "--out", str(folder / "out"), "--resume", "--quiet"]


def _edit_checkpoint(change: Callable[[dict], None]) -> Callable[[Path], list[str]]:
    """Rewrite the run's newest checkpoint with `change` applied, hashes renewed (a careful
    forger), so only the content checks can catch it."""

    def setup(folder: Path) -> list[str]:
        from dlopt.train import load_checkpoint, save_checkpoint

        path = folder / "out" / "checkpoint.pt"
        payload = load_checkpoint(path)[0]
        change(payload)
        save_checkpoint(payload, path, keep_previous=False)
        (folder / "out" / "checkpoint.prev.pt").unlink(missing_ok=True)
        return _resume(folder)

    return setup


def _set(path: tuple[str, ...], value: object) -> Callable[[dict], None]:
    def change(payload: dict) -> None:
        target = payload
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _nan_weights(payload: dict) -> None:
    key = next(iter(payload["model"]))
    payload["model"][key] = torch.full_like(payload["model"][key], float("nan"))


def _bad_group_lr(payload: dict) -> None:
    payload["optimizer"]["param_groups"][0]["lr"] = "0.5"


def _locked(folder: Path) -> list[str]:
    import fcntl

    out = folder / "out"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # this test process holds the folder, as a run would
    _HELD.append(fd)
    (folder / "c.toml").write_text(BASE)
    return ["train", str(folder / "c.toml"), "--out", str(out), "--quiet"]


_HELD: list[int] = []


def _member_metrics(text: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        (folder / "out" / "member-0" / "metrics.json").write_text(text)
        return _resume(folder)

    return setup


def _member_only_prev_then(text: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        return _resume(folder, text)

    return setup


def config_cases() -> list[Case]:
    values = {
        "hidden-1e12": ("[model]", "hidden = [1000000000000]"),
        "hidden-zero": ("[model]", "hidden = [0]"),
        "hidden-float": ("[model]", "hidden = [1e12]"),
        "hidden-string": ("[model]", 'hidden = "128"'),
        "channels-huge": ("[model]", 'kind = "cnn"\nchannels = [100000000]'),
        "kernel-huge": ("[model]", 'kind = "cnn"\nkernel_size = 1000000000'),
        "kind-unknown": ("[model]", 'kind = "rnn"'),
        "activation-unknown": ("[model]", 'activation = "relu2"'),
        "dropout-one": ("[model]", "dropout = 1.0"),
        "dropout-nan": ("[model]", "dropout = nan"),
        "maxout-bn": ("[model]", 'activation = "maxout"\nbatch_norm = true'),
        "lr-string": ("[optimizer]", 'lr = "1e-3"'),
        "lr-zero": ("[optimizer]", "lr = 0"),
        "lr-inf": ("[optimizer]", "lr = inf"),
        "lr-nan": ("[optimizer]", "lr = nan"),
        "optimizer-unknown": ("[optimizer]", 'name = "adamm"'),
        "momentum-on-sgd": ("[optimizer]", 'name = "sgd"\nmomentum = 0.5'),
        "momentum-one": ("[optimizer]", 'name = "momentum"\nmomentum = 1.0'),
        "max-iter-on-adam": ("[optimizer]", "max_iter = 5"),
        "decay-on-lbfgs": ("[optimizer]", 'name = "lbfgs"\nweight_decay = 0.1'),
        "decay-negative": ("[optimizer]", "weight_decay = -1.0"),
        "decay-include-bad": ("[optimizer]", 'decay_include = "biases"'),
        "bfgs-too-big": ("[optimizer]", 'name = "bfgs"\n[model]\nhidden = [2048, 2048]'),
        "schedule-unknown": ("[schedule]", 'name = "warmup"'),
        "gamma-zero": ("[schedule]", 'name = "step"\ngamma = 0.0'),
        "epochs-zero": ("[train]", "epochs = 0"),
        "batch-zero": ("[train]", "batch_size = 0"),
        "batch-bool": ("[train]", "batch_size = true"),
        "loss-unknown": ("[train]", 'loss = "hinge"'),
        "device-unknown": ("[train]", 'device = "tpu"'),
        "checkpoint-every-negative": ("[train]", "checkpoint_every_steps = -1"),
        "es-monitor-typo": ("[early_stopping]", 'monitor = "val_acc"'),
        "es-monitor-unknown": ("[early_stopping]", 'monitor = "f1"'),
        "es-mode-bad": ("[early_stopping]", 'mode = "up"'),
        "es-patience-zero": ("[early_stopping]", "patience = 0"),
        "es-val-without-val": (
            "[early_stopping]",
            "monitor = 'val_loss'\n[data]\nval_fraction = 0.0",
        ),
        "penalty-monitor-without-penalty": ("[early_stopping]", 'monitor = "penalty"'),
        "l1-negative": ("[regularization]", "l1 = -0.1"),
        "elastic-no-beta": ("[regularization]", "elastic_net = { lam = 0.1 }"),
        "include-bad": ("[regularization]", 'include = "biases"'),
        "crop-1e9": ("[augment]", "crop_padding = 1000000000"),
        "sigma-1e300": ("[augment]", "elastic_alpha = 1.0\nelastic_sigma = 1e300"),
        "rotation-400": ("[augment]", "rotation = 400.0"),
        "hflip-two": ("[augment]", "hflip = 2.0"),
        "scale-inverted": ("[augment]", "scale = [2.0, 1.0]"),
        "augment-shape-4d": ("[augment]", "shape = [1, 1, 8, 8]"),
        "augment-shape-wrong": ("[augment]", "shape = [3, 8, 8]\nrotation = 10.0"),
        "members-one": ("[ensemble]", "members = 1"),
        "members-1000": ("[ensemble]", "members = 1000"),
        "data-shape-mismatch": ("[data]", "shape = [1, 9, 9]"),
        "data-shape-zero": ("[data]", "shape = [0, 8, 8]"),
        "data-shape-4d": ("[data]", "shape = [1, 1, 8, 8]"),
        "data-shape-huge": ("[data]", "shape = [1, 1000000000, 1]"),
        "val-fraction-one": ("[data]", "val_fraction = 1.0"),
        "test-fraction-zero": ("[data]", "test_fraction = 0.0"),
        "train-size-zero": ("[data]", "train_size = 0"),
        "data-unknown": ("[data]", 'name = "nosuch"'),
        "data-typo-key": ("[data]", "val_fracton = 0.1"),
        "section-typo": ("[optimiser]", 'name = "adam"'),
    }
    cases = [
        Case(f"config-{name}", _config(f"{BASE}{section}\n{line}\n"))
        for name, (section, line) in values.items()
    ]
    top = {
        "seed-2**64": "seed = 18446744073709551616\n",
        "seed-negative": "seed = -1\n",
        "seed-float": "seed = 1.5\n",
        "name-table": "name = { a = 1 }\n",
        "unknown-top-key": "sead = 3\n",
    }
    cases += [Case(f"config-{n}", _config(text + BASE)) for n, text in top.items()]
    raw = {
        "invalid-toml": "[data\nname = 'digits'\n",
        "duplicate-key": "[train]\nepochs = 1\nepochs = 2\n",
        "duplicate-section": "[train]\nepochs = 1\n[train]\nepochs = 2\n",
        "nested-deep": "x = " + "[" * 2000 + "]" * 2000 + "\n",
        "section-is-number": "data = 3\n",
        "empty-file": "",
        "big-file": "# " + "x" * (2 << 20) + "\n",
        "nul-byte": "name = 'a\x00b'\n",
    }
    cases += [Case(f"config-{n}", _config(text)) for n, text in raw.items()]

    def binary(folder: Path) -> list[str]:
        (folder / "c.toml").write_bytes(b"\xff\xfe[data]\n")
        return ["train", str(folder / "c.toml"), "--out", str(folder / "out")]

    def special(make: Callable[[Path], None], name: str = "c.toml") -> Callable[[Path], list[str]]:
        def setup(folder: Path) -> list[str]:
            make(folder / name)
            return ["train", str(folder / name), "--out", str(folder / "out")]

        return setup

    cases += [
        Case("config-not-utf8", binary),
        Case("config-fifo", special(_fifo)),
        Case("config-dev-zero", special(_zero)),
        Case("config-folder", special(lambda p: p.mkdir())),
        Case("config-missing", special(lambda p: None)),
        Case("config-yaml", special(lambda p: p.write_text("a: 1\n"), "c.yaml")),
        Case("config-newline-name", _config("[data\n", "bad\nerror: forged.toml")),
        Case("config-unreadable-link", special(lambda p: p.symlink_to(p))),
    ]
    return cases


def search_cases() -> list[Case]:
    sections = {
        "monitor-typo": '[search]\nmonitor = "val_acc"\n',
        "q-1e9": '[search]\nstrategy = "grid"\nq = 1000000000\n',
        "grid-too-big": '[search]\nstrategy = "grid"\nq = 400\n[search.space]\n'
        '"model.dropout" = {low = 0.0, high = 0.5}\n',
        "rounds-exceed-trials": '[search]\nstrategy = "coarse-to-fine"\nn_trials = 2\nrounds = 5\n',
        "int-empty": '[search.space]\n"train.batch_size" = {low = 0.2, high = 0.8, integer = true}\n',
        "int-low-equals-high": '[search.space]\n"train.epochs" = {low = 3, high = 3, integer = true}\n',
        "log-zero": '[search.space]\n"model.dropout" = {low = 0.0, high = 0.5, log = true}\n',
        "int-log-below-one": '[search.space]\n"train.epochs" = {low = 0.5, high = 4, log = true, integer = true}\n',
        "range-inverted": '[search.space]\n"model.dropout" = {low = 0.5, high = 0.1}\n',
        "choices-empty": '[search.space]\n"model.activation" = {choices = []}\n',
        "choice-invalid": '[search.space]\n"model.activation" = {choices = ["relu", "nope"]}\n',
        "range-and-choices": '[search.space]\n"model.dropout" = {low = 0.1, high = 0.2, choices = [0.1]}\n',
        "space-key-bad": '[search.space]\n"lr" = {low = 1e-3, high = 1e-2}\n',
        "space-key-section-search": '[search.space]\n"search.q" = {low = 1, high = 3}\n',
        "manual-no-configs": '[search]\nstrategy = "manual"\n',
        "manual-unknown-key": '[search]\nstrategy = "manual"\nconfigs = [{"optimizer.lrr" = 0.1}]\n',
        "manual-bad-value": '[search]\nstrategy = "manual"\nconfigs = [{"optimizer.lr" = -1.0}]\n',
        "strategy-unknown": '[search]\nstrategy = "bayes"\n',
        "pruner-unknown": '[search]\npruner = "hyperband"\n',
        "n-trials-huge": "[search]\nn_trials = 1000000000\n",
        "seed-huge": "[search]\nseed = 18446744073709551616\n",
    }
    cases = [Case(f"search-{n}", _search(SEARCH + text)) for n, text in sections.items()]
    cases.append(Case("search-no-section", _search(BASE)))
    cases.append(Case("search-no-space", _search(BASE + "[search]\nn_trials = 2\n")))

    def garbage_db(folder: Path) -> list[str]:
        (folder / "not.db").write_bytes(b"this is not a database" * 10)
        return _search(SEARCH, "--storage", f"sqlite:///{folder / 'not.db'}")(folder)

    def fifo_db(folder: Path) -> list[str]:
        os.mkfifo(folder / "f.db")
        return _search(SEARCH, "--storage", f"sqlite:///{folder / 'f.db'}")(folder)

    storages = {
        "storage-foo": ("--storage", "foo://x"),
        "storage-no-scheme": ("--storage", "study.db"),
        "storage-http": ("--storage", "http://example.com/db"),
        "storage-memory-workers": ("--storage", "sqlite://", "--workers", "2"),
        "storage-missing-folder": ("--storage", "sqlite:////nonexistent/dir/s.db"),
        "workers-1e9": ("--workers", "1000000000"),
        "workers-zero": ("--workers", "0"),
        "workers-text": ("--workers", "many"),
    }
    cases += [Case(f"search-{n}", _search(SEARCH, *args)) for n, args in storages.items()]
    cases += [Case("search-storage-garbage-file", garbage_db)]
    cases += [Case("search-storage-fifo", fifo_db)]
    return cases


def data_cases() -> list[Case]:
    images = np.zeros((3, 4, 4), dtype=np.uint8)
    cases = []
    files: dict[str, tuple[str, bytes | Callable[[Path], None]]] = {
        "csv-fifo": ("d.csv", _fifo),
        "csv-dev-zero": ("d.csv", _zero),
        "csv-empty": ("d.csv", b""),
        "csv-nan": ("d.csv", b"1,2,0\nnan,1,1\n"),
        "csv-label-2e9": ("d.csv", b"1,2,0\n3,4,2000000000\n"),
        "csv-ragged": ("d.csv", b"1,2,0\n3,4\n"),
        "csv-nul": ("d.csv", b"1,2,0\n\x00,4,1\n"),
        "bin-dev-zero": ("d.bin", _zero),
        "bin-label-200": ("d.bin", bytes([200]) + bytes(3072)),
        "bin-truncated": ("d.bin", bytes(3000)),
        "npz-object": ("d.npz", _npz(X=np.array([{"a": 1}], dtype=object), y=np.array([0]))),
        "npz-no-y": ("d.npz", _npz(X=np.ones((3, 2)))),
        "npz-mismatch": ("d.npz", _npz(X=np.ones((3, 2)), y=np.zeros(4))),
        "npz-garbage": ("d.npz", b"PK\x03\x04garbage"),
        "npy-pickle": ("d.npy", pickle.dumps({"a": 1})),
        "npy-huge-header": ("d.npy", _npy_claiming((1 << 31, 2))),
        "idx-dims-overflow": ("d-images-idx3-ubyte", _idx((1 << 16, 1 << 16, 1 << 16, 1 << 16))),
        "idx-claims-2**31": ("d-images-idx3-ubyte", _idx((1 << 31, 1, 1))),
        "idx-bad-magic": ("d-images-idx3-ubyte", b"\x01\x02\x03\x04" + bytes(20)),
        "idx-no-labels": ("d-images-idx3-ubyte", _idx((3, 4, 4), images.tobytes())),
        "idx-gz-bomb-header": (
            "d-images-idx3-ubyte.gz",
            gzip.compress(_idx((60000, 2048, 2048)) + bytes(200_000)),
        ),
        "idx-gz-garbage": ("d-images-idx3-ubyte.gz", b"\x1f\x8bnot really gzip"),
        "idx-dev-zero": ("d-images-idx3-ubyte", _zero),
        "unknown-format": ("d.xyz", b"1,2\n"),
        "folder": ("d.csv", lambda p: p.mkdir()),
    }
    for name, (filename, data) in files.items():
        cases.append(Case(f"data-show-{name}", _show(filename, data)))
    for name in (
        "csv-fifo",
        "csv-dev-zero",
        "csv-label-2e9",
        "bin-dev-zero",
        "npz-object",
        "idx-gz-bomb-header",
        "idx-dims-overflow",
        "npy-pickle",
    ):
        filename, data = files[name]
        cases.append(Case(f"data-train-{name}", _train_on(filename, data)))
    return cases


def _npy_claiming(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return np.lib.format.MAGIC_PREFIX + b"\x01\x00" + buffer.getvalue()[8:] + bytes(64)


def run_cases() -> list[Case]:
    """From a finished run: resume with changed configs and forged checkpoints."""
    other = {
        "resume-other-lr": BASE + "[optimizer]\nlr = 0.5\n",
        "resume-other-activation": BASE.replace(
            "hidden = [8]", 'hidden = [8]\nactivation = "tanh"'
        ),
        "resume-other-width": BASE.replace("hidden = [8]", "hidden = [16]"),
        "resume-other-seed": "seed = 7\n" + BASE,
        "resume-other-data": BASE.replace("train_size = 150", "train_size = 140"),
    }
    cases = [Case(n, lambda folder, t=t: _resume(folder, t), "run") for n, t in other.items()]
    forged = {
        "ckpt-lr-string": _bad_group_lr,
        "ckpt-epoch-negative": _set(("state", "epoch"), -1000000),
        "ckpt-batch-huge": _set(("state", "batch"), 10**9),
        "ckpt-accumulator-shape": _set(
            ("accumulators", "loss_sum"), torch.zeros(3, dtype=torch.float64)
        ),
        "ckpt-seen-negative": _set(("accumulators", "seen"), -5),
        "ckpt-nan-weights": _nan_weights,
        "ckpt-model-list": _set(("model",), [1, 2, 3]),
        "ckpt-no-meta": lambda p: p.pop("meta"),
        "ckpt-optimizer-string": _set(("optimizer",), "adam"),
        "ckpt-rng-garbage": _set(("rng", "torch"), torch.zeros(3, dtype=torch.uint8)),
    }
    cases += [Case(n, _edit_checkpoint(change), "run") for n, change in forged.items()]

    def fresh_into_run(folder: Path) -> list[str]:
        return ["train", str(folder / "c.toml"), "--out", str(folder / "out"), "--quiet"]

    def sidecar_fifo(folder: Path) -> list[str]:
        (folder / "out" / "checkpoint.pt.sha256").unlink()
        os.mkfifo(folder / "out" / "checkpoint.pt.sha256")
        return _resume(folder)

    def checkpoint_dev_zero(folder: Path) -> list[str]:
        for name in ("checkpoint.pt", "checkpoint.prev.pt"):
            (folder / "out" / name).unlink(missing_ok=True)
        (folder / "out" / "checkpoint.pt").symlink_to("/dev/zero")
        return _resume(folder)

    def pickle_checkpoint(folder: Path) -> list[str]:
        from dlopt.train import save_checkpoint

        class Payload:
            def __reduce__(self):
                return (os.system, (f"touch {folder}/PWNED",))

        path = folder / "out" / "checkpoint.pt"
        buffer = io.BytesIO()
        torch.save({"format": "dlopt-checkpoint", "x": Payload()}, buffer)
        save_checkpoint({"x": 1}, path, keep_previous=False)  # a sidecar, then the forged bytes
        (folder / "out" / "checkpoint.prev.pt").unlink(missing_ok=True)
        path.write_bytes(buffer.getvalue())
        return _resume(folder)

    def stored_config_garbage(folder: Path) -> list[str]:
        (folder / "out" / "config.json").write_text("{not json")
        return _resume(folder)

    cases += [
        Case("run-fresh-into-finished", fresh_into_run, "run"),
        Case("run-sidecar-fifo", sidecar_fifo, "run"),
        Case("run-checkpoint-dev-zero", checkpoint_dev_zero, "run"),
        Case("run-pickle-payload", pickle_checkpoint, "run"),
        Case("run-stored-config-garbage", stored_config_garbage, "run"),
        Case("run-locked-by-another", _locked),
        Case("run-resume-nothing", lambda f: _resume(f, BASE)),
        Case("ensemble-member-metrics-garbage", _member_metrics("{garbage"), "ensemble"),
        Case("ensemble-member-metrics-list", _member_metrics("[1, 2]"), "ensemble"),
        Case(
            "ensemble-other-config",
            _member_only_prev_then(ENSEMBLE.replace("lr = 3e-3", "lr = 0.5")),
            "ensemble",
        ),
    ]
    return cases


def cli_cases() -> list[Case]:
    def argv(*args: str) -> Callable[[Path], list[str]]:
        return lambda folder: list(args)

    def out_is_file(folder: Path) -> list[str]:
        (folder / "c.toml").write_text(BASE)
        (folder / "out").write_text("a file")
        return ["train", str(folder / "c.toml"), "--out", str(folder / "out"), "--quiet"]

    return [
        Case("cli-unknown-command", argv("trian")),
        Case("cli-unknown-option", argv("train", "--bogus")),
        Case("cli-missing-argument", argv("train")),
        Case("cli-datasets-show-missing", argv("datasets", "show", "nosuch")),
        Case("cli-bench-unknown", argv("bench", "nosuch")),
        Case("cli-out-is-a-file", out_is_file),
    ]


ENSEMBLE = (
    BASE.replace("train_size = 150", "train_size = 120")
    + "[optimizer]\nlr = 3e-3\n[ensemble]\nmembers = 2\n"
)


def make_start(kind: str, folder: Path) -> None:
    """A finished run (or ensemble) in folder/out, its config in folder/c.toml."""
    import tomllib

    from dlopt.lab import ensemble_run, parse_config, train_run

    text = BASE if kind == "run" else ENSEMBLE
    (folder / "c.toml").write_text(text)
    config = parse_config(tomllib.loads(text))
    (ensemble_run if kind == "ensemble" else train_run)(config, folder / "out", quiet=True)


def copy_start(source: Path, folder: Path) -> None:
    shutil.copytree(source, folder, dirs_exist_ok=True, symlinks=True)


def corpus() -> list[Case]:
    return config_cases() + search_cases() + data_cases() + run_cases() + cli_cases()
