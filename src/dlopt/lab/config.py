"""Run configuration: TOML files validated by pydantic, one clear line per problem (SPEC J3).

A config names the data, the model, the optimizer, an optional LR schedule, training settings
and optional early stopping. Every key is checked: an unknown key (with a "did you mean"), a
wrong type (``lr = "1e-3"``), an out-of-range or non-finite value is an error naming the key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from dlopt._io import read_input
from dlopt._validation import did_you_mean
from dlopt.errors import ConfigError
from dlopt.lab.build import OPTIMIZERS
from dlopt.lab.sections import (
    MAX_SEED,
    AugmentConfig,
    DataConfig,
    EarlyStoppingConfig,
    EnsembleConfig,
    ModelConfig,
    OptimizerConfig,
    RegularizationConfig,
    ScheduleConfig,
    SearchConfig,
    SWAConfig,
    TrainConfig,
    _Section,
)

__all__ = [  # the sections are re-exported: the whole schema is importable from here
    "AugmentConfig",
    "DataConfig",
    "EarlyStoppingConfig",
    "EnsembleConfig",
    "ModelConfig",
    "OptimizerConfig",
    "RegularizationConfig",
    "RunConfig",
    "SWAConfig",
    "ScheduleConfig",
    "SearchConfig",
    "TrainConfig",
    "format_validation_error",
    "load_config",
    "parse_config",
]

MAX_CONFIG_BYTES = 1 << 20


class RunConfig(_Section):
    name: str = "run"
    seed: int = Field(0, ge=0, le=MAX_SEED)
    data: DataConfig = Field(default_factory=lambda: DataConfig())
    model: ModelConfig = Field(default_factory=lambda: ModelConfig())
    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig())
    schedule: ScheduleConfig = Field(default_factory=lambda: ScheduleConfig())
    train: TrainConfig = Field(default_factory=lambda: TrainConfig())
    early_stopping: EarlyStoppingConfig | None = None
    regularization: RegularizationConfig = Field(default_factory=lambda: RegularizationConfig())
    augment: AugmentConfig | None = None
    swa: SWAConfig | None = None
    search: SearchConfig | None = None  # read by `dlopt search`, ignored by `dlopt train`
    ensemble: EnsembleConfig | None = None

    def logged_metrics(self) -> list[str]:
        """The names every epoch's metrics may hold (accuracy only on classification data)."""
        second_order = OPTIMIZERS[self.optimizer.name].second_order
        train = ["loss"] + ([] if second_order else ["accuracy"])
        r = self.regularization
        if r.l1 > 0 or r.l2 > 0 or r.elastic_net is not None:
            train += ["penalty", "sparsity"]
        val = ["val_loss", "val_accuracy"] if self.data.val_fraction > 0 else []
        val += [f"val_{m}" for m in self.train.metrics if val and f"val_{m}" not in val]
        return ["epoch", *train, *val, "lr"]

    @model_validator(mode="after")
    def _swa_keeps_its_average(self) -> RunConfig:
        es = self.early_stopping
        if self.swa is not None and es is not None and es.restore_best_weights:
            raise ValueError(
                "[swa] ends with the averaged weights, which early_stopping.restore_best_weights "
                "would replace; set restore_best_weights = false"
            )
        return self

    @model_validator(mode="after")
    def _space_keys_name_sections(self) -> RunConfig:
        for key in self.search.space if self.search is not None else ():
            section, _, name = key.partition(".")
            if not name or section not in RunConfig.model_fields or section == "search":
                raise ValueError(
                    f"search.space key {key!r} must be SECTION.KEY of this config "
                    "(e.g. optimizer.lr)"
                )
        return self

    @model_validator(mode="after")
    def _loss_fits_the_task(self) -> RunConfig:
        needs = {"cross_entropy": "classification", "mse": "regression"}.get(self.train.loss)
        if needs is not None and self.data.task not in ("auto", needs):
            raise ValueError(
                f"train.loss {self.train.loss!r} needs {needs} but data.task is "
                f'{self.data.task!r}; use loss = "auto"'
            )
        return self

    @model_validator(mode="after")
    def _monitors_are_logged(self) -> RunConfig:
        logged = self.logged_metrics()
        for section in ("early_stopping", "search"):
            monitor = getattr(getattr(self, section), "monitor", None)
            if monitor is not None and monitor not in logged:
                why = (
                    " (data.val_fraction is 0)"
                    if monitor.startswith("val_") and self.data.val_fraction == 0
                    else ""
                )
                raise ValueError(
                    f"{section}.monitor {monitor!r} is not logged{why}; logged: "
                    f"{', '.join(logged)}." + did_you_mean(monitor, logged)
                )
        return self


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where an unknown key was found (for "did you mean")."""
    for key in loc[:-1]:
        field = model.model_fields.get(str(key))
        annotation = getattr(field, "annotation", None)
        candidates = [
            a
            for a in getattr(annotation, "__args__", (annotation,))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if not candidates:
            return []
        model = candidates[0]
    return list(model.model_fields)


def format_validation_error(exc: ValidationError, model: type[BaseModel]) -> str:
    """Every problem pydantic found, in one line: `where: what (got …); where: …`."""
    errors = exc.errors()
    shown_errors = [_one_problem(e, model) for e in errors[:MAX_LISTED]]
    rest = len(errors) - len(shown_errors)
    more = f"; and {rest} more problem{'s' if rest > 1 else ''}" if rest > 0 else ""
    return "; ".join(shown_errors) + more


MAX_LISTED = 8  # problems named in the one error line


def _one_problem(error: Any, model: type[BaseModel]) -> str:
    loc = tuple(error["loc"])
    where = ".".join(str(part) for part in loc)
    if error["type"] == "extra_forbidden":
        message = "unknown key." + did_you_mean(str(loc[-1]), _fields_at(model, loc))
    else:
        message = error["msg"].removeprefix("Value error, ")
        shown = repr(error.get("input"))
        if "input" in error and error["type"] != "missing" and loc and shown not in message:
            message += f" (got {shown[:60]}{'…' if len(shown) > 60 else ''})"
    return f"{where}: {message}" if where else message


def parse_config(data: dict[str, Any], *, source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, RunConfig), source=source) from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML run configuration."""
    path = Path(path)
    if path.suffix.lower() != ".toml":
        raise ConfigError("a config must be a TOML file (.toml)", source=path)
    raw = read_input(path, ConfigError, kind="config file", max_bytes=MAX_CONFIG_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("not UTF-8 text", source=path, where=f"@{exc.start}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = ""
        if "(at line" in message:
            message, _, position = message.partition(" (at line ")
            line, _, column = position.rstrip(")").partition(", column ")
            where = f":{line}:{column}" if column else f":{line}"
        elif "(at end of document)" in message:
            message = message.replace(" (at end of document)", " at the end of the file")
        raise ConfigError(f"invalid TOML: {message}", source=path, where=where) from None
    except RecursionError:
        raise ConfigError("invalid TOML: nested too deeply", source=path) from None
    if not data:  # an empty or truncated file, or the wrong one: not a request for defaults
        raise ConfigError(
            "holds no settings (empty or only comments); a config names at least its data, "
            'e.g. [data] name = "digits" (see examples/)',
            source=path,
        )
    return _files_beside(parse_config(data, source=str(path)), path.parent)


def _files_beside(config: RunConfig, folder: Path) -> RunConfig:
    """Relative data paths are read from the config file's folder (not the working one),
    stored absolute so the run folder can be used from anywhere."""
    from dlopt.data import BUNDLED

    d = config.data
    update: dict[str, str] = {}
    if (
        d.name not in BUNDLED
        and any(sep in d.name for sep in "/\\.")
        and not Path(d.name).is_absolute()
    ):
        update["name"] = os.path.abspath(folder / d.name)
    if d.labels is not None and not Path(d.labels).is_absolute():
        update["labels"] = os.path.abspath(folder / d.labels)
    if not update:
        return config
    return config.model_copy(update={"data": d.model_copy(update=update)})
