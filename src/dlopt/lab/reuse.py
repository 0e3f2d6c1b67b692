"""A finished run folder, used again: ``load_run``, ``dlopt evaluate`` and ``dlopt predict``.

Besides its config (``config.json``), best weights (``best.pt``) and metrics, a run writes
``run.json``: what the model was trained on — task, feature shape, class names (the label
encoding) and the standardization statistics, stored exactly (float32 values written as the
float64 that holds them), so a model loaded in a fresh process predicts bit for bit alike.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dlopt._io import read_input, write_text_atomic
from dlopt.data import Dataset, Splits, Standardizer, load_data, read_csv_table
from dlopt.errors import CheckpointError, DataError
from dlopt.lab.build import OPTIMIZERS, build_model
from dlopt.lab.config import RunConfig, parse_config
from dlopt.lab.folder import CONFIG_FILE
from dlopt.train.checkpoint import load_checkpoint

RUN_FILE = "run.json"
FORMAT = "dlopt-run"


def write_run_info(out: Path, splits: Splits) -> None:
    """Write ``out/run.json`` from the training split and the split's standardization."""
    train, t = splits.train, splits.transform
    info = {
        "format": FORMAT,
        "task": train.task,
        "n_classes": train.n_classes,
        "class_names": list(train.class_names),
        "feature_shape": list(train.feature_shape),
        "transform": None if t is None else {"mean": t.mean.tolist(), "std": t.std.tolist()},
    }
    write_text_atomic(out / RUN_FILE, json.dumps(info))


@dataclass(frozen=True)
class TrainedRun:
    """A trained model (or an ensemble's members) with what it needs to take raw features.

    ``predict(x)`` takes raw (unstandardized) features, (n, *feature_shape) or (n, features),
    and returns class indices (``class_names[i]`` names them) or regression values.
    """

    folder: Path
    config: RunConfig
    members: tuple[nn.Module, ...]
    transform: Standardizer | None
    task: str
    n_classes: int
    class_names: tuple[str, ...]
    feature_shape: tuple[int, ...]
    device: torch.device

    @property
    def model(self) -> nn.Module:
        """The model; an ensemble's members as an ``nn.ModuleList``."""
        return self.members[0] if len(self.members) == 1 else nn.ModuleList(self.members)

    @property
    def is_ensemble(self) -> bool:
        return self.config.ensemble is not None

    def prepare(self, x: Tensor | np.ndarray) -> Tensor:
        """Raw features → the standardized float32 batch the model takes, on its device."""
        X = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
        n_features = math.prod(self.feature_shape)
        if X.dim() < 2 or math.prod(X.shape[1:]) != n_features:
            raise DataError(
                f"features of shape {tuple(X.shape)[1:]} per sample; the model takes "
                f"{n_features} ({self.feature_shape})",
                source=self.folder,
            )
        X = X.to(torch.float32).reshape(len(X), *self.feature_shape)
        if self.transform is not None:
            X = (X - self.transform.mean) / self.transform.std
        return X.to(self.device)

    @torch.no_grad()
    def outputs(self, x: Tensor | np.ndarray, batch_size: int = 4096) -> Tensor:
        """Members × samples × outputs (one member for a single run), on the CPU."""
        X = self.prepare(x)
        per_member = []
        for model in self.members:
            model.eval()
            per_member.append(
                torch.cat([model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])
            )
        return torch.stack(per_member).float().cpu()

    def predict_proba(self, x: Tensor | np.ndarray) -> Tensor:
        """Class probabilities (the members' average for an ensemble)."""
        if self.task != "classification":
            raise DataError("a regression model has no class probabilities", source=self.folder)
        return self.outputs(x).softmax(-1).mean(0)

    def predict(self, x: Tensor | np.ndarray) -> Tensor:
        if self.task == "classification":
            return self.predict_proba(x).argmax(-1)
        return self.outputs(x).mean(0).reshape(-1)

    def label_names(self) -> tuple[str, ...]:
        return self.class_names or tuple(str(k) for k in range(self.n_classes))


def load_run(folder: str | Path, device: str = "cpu") -> TrainedRun:
    """Load the run in `folder` (``dlopt train CONFIG --out folder``): its best weights in eval
    mode on `device`, its config and its data transform. Weights load with
    ``torch.load(weights_only=True)`` from checkpoints verified against their SHA-256."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            "no such run folder" if not folder.exists() else "not a folder", source=folder
        )
    config = _stored_config(folder / CONFIG_FILE)
    info = _json(folder / RUN_FILE)
    try:
        task, n_classes = str(info["task"]), int(info["n_classes"])
        names = tuple(str(n) for n in info["class_names"])
        shape = tuple(int(s) for s in info["feature_shape"])
        t = info["transform"]
        transform = (
            None
            if t is None
            else Standardizer(
                torch.tensor(t["mean"], dtype=torch.float32).reshape(shape),
                torch.tensor(t["std"], dtype=torch.float32).reshape(shape),
            )
        )
    except (KeyError, TypeError, ValueError, RuntimeError):
        raise CheckpointError("not a dlopt run description", source=folder / RUN_FILE) from None
    if info.get("format") != FORMAT or task not in ("classification", "regression"):
        raise CheckpointError("not a dlopt run description", source=folder / RUN_FILE)
    target = _device(device)
    like = Dataset(
        torch.zeros(1, *shape),
        torch.zeros(1, dtype=torch.int64 if task == "classification" else torch.float32),
        task,  # type: ignore[arg-type]
        config.data.name,
        n_classes,
    )
    single = config.model_copy(update={"ensemble": None})
    count = 1 if config.ensemble is None else config.ensemble.members
    weights = (
        [folder / "best.pt"]
        if config.ensemble is None
        else [folder / f"member-{i}" / "best.pt" for i in range(count)]
    )
    members = []
    for path in weights:
        model = build_model(single, like)
        try:
            model.load_state_dict(load_checkpoint(path)[0]["model"])
        except (KeyError, RuntimeError, TypeError) as exc:
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise CheckpointError(
                f"weights do not fit the run's model ({reason})", source=path
            ) from None
        members.append(model.to(target).eval())
    return TrainedRun(
        folder, config, tuple(members), transform, task, n_classes, names, shape, target
    )


def _stored_config(path: Path) -> RunConfig:
    """The validated config stored with the run. It holds every key, so the optimizer's are
    kept to those its optimizer reads (a file that names another's is refused)."""
    data = _json(path)
    optimizer = data.get("optimizer")
    if isinstance(optimizer, dict) and optimizer.get("name") in OPTIMIZERS:
        reads = {"name", "lr", *OPTIMIZERS[optimizer["name"]].options}
        data["optimizer"] = {k: v for k, v in optimizer.items() if k in reads}
    return parse_config(data, source=str(path))


def _device(name: str) -> torch.device:
    try:
        target = torch.device(name)
    except (RuntimeError, TypeError):
        raise DataError(
            f"not a device: {name!r} (cpu, cuda, cuda:1, …)", source="--device"
        ) from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise DataError("'cuda' requested but no CUDA device is available", source="--device")
    if target.type not in ("cpu", "cuda"):
        raise DataError(f"not a device: {name!r} (cpu, cuda, cuda:1, …)", source="--device")
    return target


def _json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise CheckpointError(
            f"not a finished dlopt run folder (no {path.name}); train one with "
            "dlopt train CONFIG --out DIR",
            source=path.parent,
        )
    try:
        data = json.loads(read_input(path, CheckpointError, kind="run file", max_bytes=1 << 26))
    except ValueError:  # includes UnicodeDecodeError
        raise CheckpointError("not valid JSON", source=path) from None
    if not isinstance(data, dict):
        raise CheckpointError("not a JSON table", source=path)
    return data


def labelled_data(run: TrainedRun, source: str) -> Dataset:
    """A data set to evaluate `run` on, its labels encoded as the run's (class names mapped)."""
    d = run.config.data
    data = load_data(source, label=d.label, labels=d.labels, task=run.task)
    if data.task != run.task:
        raise DataError(f"holds {data.task} labels; the run is {run.task}", source=source)
    if run.task == "regression":
        return data
    if bool(data.class_names) != bool(run.class_names):
        what = "class names" if run.class_names else "integer classes"
        raise DataError(f"labels do not match the run's, which has {what}", source=source)
    y = data.y
    if run.class_names:
        index = {name: k for k, name in enumerate(run.class_names)}
        unknown = [n for n in data.class_names if n not in index]
        if unknown:
            raise DataError(
                f"class {unknown[0]!r} is not one of the run's: {', '.join(run.class_names)}",
                source=source,
            )
        y = torch.tensor([index[n] for n in data.class_names], dtype=torch.int64)[data.y]
    elif len(y) and int(y.max()) >= run.n_classes:
        raise DataError(
            f"label {int(y.max())} out of range for the run's {run.n_classes} classes",
            source=source,
        )
    return Dataset(data.X, y, data.task, data.name, run.n_classes, run.class_names)


def features_of(run: TrainedRun, source: str) -> Tensor:
    """The raw features of `source` (a CSV with or without its label column, or any data
    set), checked against the run's feature count."""
    n = math.prod(run.feature_shape)
    if Path(source).suffix != ".csv":
        return load_data(source, label=run.config.data.label, labels=run.config.data.labels).X
    table = read_csv_table(Path(source), run.config.data.label, label_optional=True)
    if table.features.shape[1] == n:
        return torch.from_numpy(table.features.astype(np.float32))
    if table.labels.dtype.kind != "U" and table.features.shape[1] + 1 == n:
        full = np.insert(table.features, table.label_column, table.labels, axis=1)
        return torch.from_numpy(full.astype(np.float32))
    width = table.features.shape[1] + 1
    raise DataError(
        f"{width} columns; the run's model takes {n} features (and an optional label column)",
        source=source,
    )


def evaluate_run(run: TrainedRun, source: str | None = None) -> dict[str, float]:
    """Test metrics of `run`: on its own test split (the numbers in its metrics.json), or on
    every sample of `source` (a bundled name or a file, labels encoded as the run's)."""
    from dlopt.lab.run import ensemble_metrics, load_splits
    from dlopt.train.trainer import Trainer

    if source is None:
        test = load_splits(run.config).test  # the same seeded split, standardized alike
    else:
        data = labelled_data(run, source)
        X = run.prepare(data.X).cpu()
        test = Dataset(X, data.y, data.task, data.name, data.n_classes, data.class_names)
    if run.is_ensemble:
        return ensemble_metrics(list(run.members), test, run.device)
    trainer = Trainer(run.members[0], loss=run.config.train.loss)
    return {f"test_{k}": v for k, v in trainer.evaluate(test).items()}


def write_predictions(run: TrainedRun, source: str, out: Path, *, proba: bool = False) -> int:
    """Write `run`'s predictions for `source` to the CSV `out` (atomically): one row per
    sample, the class name (or value), then each class's probability with `proba`.
    Returns the number of rows."""
    X = features_of(run, source)
    header = ["prediction"]
    if run.task == "classification":
        names = run.label_names()
        probabilities = run.predict_proba(X)
        rows = [[names[k]] for k in probabilities.argmax(-1).tolist()]
        if proba:
            header += [f"p_{name}" for name in names]
            for row, p in zip(rows, probabilities.double().tolist(), strict=True):
                row += [repr(v) for v in p]
    else:
        if proba:
            raise DataError(
                "--proba needs a classification run; this one is regression", source=source
            )
        rows = [[repr(v)] for v in run.predict(X).double().tolist()]
    lines = [",".join(_quoted(c) for c in header)] + [",".join(_quoted(c) for c in r) for r in rows]
    write_text_atomic(out, "\n".join(lines) + "\n")
    return len(rows)


def _quoted(field: str) -> str:
    return (
        f'"{field.replace(chr(34), chr(34) * 2)}"' if any(c in field for c in ',"\n\r') else field
    )
