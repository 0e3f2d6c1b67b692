"""`dlopt search CONFIG.toml`: search the keys listed under [search.space] of a run config.

Every trial is a `dlopt train` run of the config with the trial's values put in (validated
like any config), in OUT/trial-NNNN; its value is the best `monitor` over its epochs (lowest
loss, highest accuracy). Trials go to OUT/study.db (SQLite) unless another storage is named,
so a second call continues the search; OUT/search.json lists every trial and the best.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import optuna

from dlopt._io import write_text_atomic
from dlopt.errors import ConfigError
from dlopt.lab.config import RunConfig, SearchConfig, parse_config
from dlopt.lab.folder import locked, store_or_check_config, write_config
from dlopt.lab.run import load_splits, train_run
from dlopt.search._storage import check_reachable, database_url
from dlopt.search.pruning import PruneTrial
from dlopt.search.space import Categorical, Float, Int, Param
from dlopt.search.study import SearchResult, search


def space_of(config: SearchConfig) -> dict[str, Param]:
    """The [search.space] as search() takes it; choices that are lists or tables (a list of
    hidden widths) become their JSON text, decoded again by :func:`trial_config`."""
    space: dict[str, Param] = {}
    for key, p in config.space.items():
        if p.choices is not None:
            space[key] = Categorical(tuple(_encode(c) for c in p.choices))
        elif p.integer:
            assert p.low is not None and p.high is not None
            space[key] = Int(int(p.low), int(p.high), p.log)
        else:
            assert p.low is not None and p.high is not None
            space[key] = Float(float(p.low), float(p.high), p.log)
    return space


JSON_PREFIX = "json:"


def _encode(value: Any) -> Any:
    return JSON_PREFIX + json.dumps(value) if isinstance(value, list | dict) else value


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(JSON_PREFIX):
        return json.loads(value.removeprefix(JSON_PREFIX))
    return value


def decoded(params: dict[str, Any]) -> dict[str, Any]:
    return {k: _decode(v) for k, v in params.items()}


def trial_config(base: RunConfig, params: dict[str, Any], name: str) -> RunConfig:
    data = base.model_dump(exclude={"search"}, exclude_unset=True)  # the file's keys only
    for key, value in params.items():
        section, _, field = key.partition(".")
        if data.get(section) is None:
            data[section] = {}
        data[section][field] = _decode(value)
    data["name"] = name
    return parse_config(data, source=f"search trial {name}")


STORAGE_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")


def check_storage(storage: str | None, workers: int) -> str | None:
    """Refuse a storage URL Optuna could not use, before anything is created; a PostgreSQL
    URL comes back naming the installed driver, its server checked to answer."""
    if storage is None:
        return None
    scheme, sep, rest = storage.partition("://")
    if not sep or scheme.split("+")[0] not in STORAGE_SCHEMES:
        raise ConfigError(
            f"must be a database URL ({', '.join(s + '://…' for s in STORAGE_SCHEMES)}); "
            f"got {storage[:80]!r}",
            source="--storage",
        )
    if scheme.split("+")[0] in ("postgresql", "postgres"):
        try:
            url = database_url(storage)
            check_reachable(url)
        except ValueError as error:
            raise ConfigError(str(error), source="--storage") from None
        return url
    if scheme == "sqlite":
        path = rest.removeprefix("/")
        if not path or path == ":memory:":
            if workers > 1:
                raise ConfigError(
                    "an in-memory SQLite database cannot be shared by several workers; "
                    "give a file: sqlite:///study.db",
                    source="--storage",
                )
            return storage
        file = Path(path)
        if file.exists():
            if not file.is_file():  # a FIFO, a device, a folder
                raise ConfigError("not a regular file; not an SQLite database", source=file)
            with file.open("rb") as handle:
                head = handle.read(16)
            if head and head != b"SQLite format 3\x00":
                raise ConfigError("not an SQLite database", source=file)
        elif not file.parent.is_dir():
            raise ConfigError("its folder does not exist", source=file)
    return storage


class SearchInterrupted(Exception):
    """A trial's training run was stopped by SIGINT/SIGTERM: the search stops with it. The
    trial is recorded as failed and is run again when the search continues."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def search_run(
    config: RunConfig,
    out: Path,
    *,
    storage: str | None = None,
    workers: int = 1,
    quiet: bool = False,
) -> SearchResult:
    if config.search is None:
        raise ConfigError("has no [search] section: nothing to search")
    s = config.search
    maximize = s.monitor.endswith("accuracy")
    storage = check_storage(storage, workers)
    for c in s.configs:  # every manual configuration validates, before any file is written
        trial_config(config, {k: _encode(v) for k, v in c.items()}, "check")
    for key, p in s.space.items():
        for choice in p.choices or ():
            trial_config(config, {key: _encode(choice)}, "check")
    load_splits(config)  # a data file that cannot be read is refused before study.db exists
    url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    with locked(out):
        if store_or_check_config(config, out, resume=True):
            write_config(config, out)  # no checkpoint of its own to read first
        return _search(config, out, url, workers, quiet, maximize)


def _search(
    config: RunConfig, out: Path, url: str, workers: int, quiet: bool, maximize: bool
) -> SearchResult:
    assert config.search is not None
    s = config.search

    def objective(params: dict[str, Any], trial: optuna.Trial) -> float:
        name = f"trial-{trial.number:04d}"
        run_config = trial_config(config, params, f"{config.name}/{name}")
        pruning = PruneTrial(trial, s.monitor)
        folder = out / name
        if folder.exists():  # a trial interrupted earlier: start it afresh
            shutil.rmtree(folder)
        result = train_run(run_config, folder, quiet=True, extra_callbacks=(pruning,))
        if result.interrupted:
            raise SearchInterrupted(result.interrupted)
        pruning.raise_if_pruned()
        values = [h[s.monitor] for h in result.trainer.state.history if s.monitor in h]
        if not values:
            raise ConfigError(f"search.monitor: {s.monitor!r} is not logged by the runs")
        finite = [v for v in values if math.isfinite(v)]  # a diverged run counts as the worst
        worst = -math.inf if maximize else math.inf
        best = (max if maximize else min)(finite) if finite else worst
        if not quiet:
            print(f"{name}: {decoded(params)} → {s.monitor} {best:.4g}", flush=True)
        return best

    result = search(
        objective,
        space_of(s),
        strategy=s.strategy,
        n_trials=s.n_trials,
        configs=[{k: _encode(v) for k, v in c.items()} for c in s.configs],
        q=s.q,
        rounds=s.rounds,
        storage=url,
        study_name=config.name,
        direction="maximize" if maximize else "minimize",
        pruner=s.pruner,
        seed=s.seed,
        workers=workers,
    )
    summary = {
        "monitor": s.monitor,
        "best_params": decoded(result.best_params),
        "best_value": result.best_value,
        "trials": [
            {"params": decoded(params), "value": value, "state": state}
            for params, value, state in result.trials
        ],
    }
    write_text_atomic(out / "search.json", json.dumps(summary, indent=1))
    return result
