"""`dlopt search CONFIG.toml`: search the keys listed under [search.space] of a run config.

Every trial is a `dlopt train` run of the config with the trial's values put in (validated
like any config), in OUT/trial-NNNN; its value is the best `monitor` over its epochs (lowest
loss, highest accuracy). Trials go to OUT/study.db (SQLite) unless another storage is named,
so a second call continues the search; OUT/search.json lists every trial and the best, and
OUT/search.html draws the search. In the study, each trial holds its run folder and its final
metrics as user attributes, and the objective is named after the monitor.
"""

from __future__ import annotations

import dataclasses
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
from dlopt.search._claim import PLAN
from dlopt.search._storage import check_reachable, database_url
from dlopt.search.progress import SearchProgress
from dlopt.search.pruning import PruneTrial
from dlopt.search.report import RUN_FOLDER, write_report
from dlopt.search.space import Categorical, Float, Int, Param
from dlopt.search.study import SearchResult, planned_trials, search


def space_of(config: SearchConfig, *, legacy: bool = False) -> dict[str, Param]:
    """The [search.space] as search() takes it, in values Optuna holds natively (None, bool,
    int, float, str: so optuna-dashboard and ``study.trials_dataframe()`` show them as written);
    a choice that is a list or a table (a list of hidden widths) becomes its JSON text,
    ``"[32, 16]"``, mapped back by :func:`trial_config`. `legacy`: the ``"json:[32, 16]"``
    labels of studies written before dlopt stored them this way, to resume one of those.

    Raises:
        ConfigError: two choices of a key would be stored alike (``"[8]"`` and ``[8]``).
    """
    space: dict[str, Param] = {}
    for key, p in config.space.items():
        if p.choices is not None:
            labels = tuple(label(c, legacy=legacy) for c in p.choices)
            for i, first in enumerate(labels):
                if first in labels[i + 1 :]:
                    twin = labels.index(first, i + 1)
                    raise ConfigError(
                        f"choices {p.choices[i]!r} and {p.choices[twin]!r} are both stored as "
                        f"{first!r}; keep one",
                        source=f"search.space.{key}",
                    )
            space[key] = Categorical(labels)
        elif p.integer:
            assert p.low is not None and p.high is not None
            space[key] = Int(int(p.low), int(p.high), p.log)
        else:
            assert p.low is not None and p.high is not None
            space[key] = Float(float(p.low), float(p.high), p.log)
    return space


LEGACY_PREFIX = "json:"  # how dlopt stored choices that are lists or tables before


def label(value: Any, *, legacy: bool = False) -> Any:
    """`value` as the study stores it: itself, or a list's or table's JSON text."""
    if isinstance(value, list | dict):
        text = json.dumps(value, default=str)  # a TOML date inside a list: its text
        return LEGACY_PREFIX + text if legacy else text
    return value


def _decode(config: SearchConfig | None, key: str, value: Any) -> Any:
    p = config.space.get(key) if config is not None else None
    if not isinstance(value, str) or p is None or p.choices is None:
        return value
    for choice in p.choices:
        if isinstance(choice, list | dict) and value in (label(choice), label(choice, legacy=True)):
            return choice
    return value


def decoded(config: SearchConfig | None, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's stored parameters as the config wrote them (lists and tables back)."""
    return {k: _decode(config, k, v) for k, v in params.items()}


def stored_encoding_is_legacy(url: str, study_name: str, config: SearchConfig) -> bool:
    """Whether the study `study_name` on `url` already holds one of `config`'s list or table
    choices as ``"json:…"`` (in its plan or in a trial's distribution)."""
    old = {
        label(c, legacy=True)
        for p in config.space.values()
        for c in p.choices or ()
        if isinstance(c, list | dict)
    }
    if not old:
        return False
    storage = optuna.storages.RDBStorage(url)
    try:
        if study_name not in {s.study_name for s in storage.get_all_studies()}:
            return False
        study = optuna.load_study(study_name=study_name, storage=storage)
        plan = study.user_attrs.get(PLAN, [])
        values = [v for entry in plan if isinstance(entry, dict) for v in entry.values()]
        for trial in study.get_trials(deepcopy=False):
            for d in trial.distributions.values():
                if isinstance(d, optuna.distributions.CategoricalDistribution):
                    values += list(d.choices)
        return any(isinstance(v, str) and v in old for v in values)
    finally:
        storage.engine.dispose()


def trial_config(base: RunConfig, params: dict[str, Any], name: str) -> RunConfig:
    """`base` with a trial's parameters (as stored, or as the config writes them) put in."""
    data = base.model_dump(exclude={"search"}, exclude_unset=True)  # the file's keys only
    for key, value in params.items():
        section, _, field = key.partition(".")
        if data.get(section) is None:
            data[section] = {}
        data[section][field] = _decode(base.search, key, value)
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
    """Run (or continue) the search; the result's parameters are in the config's values.
    Writes OUT/search.json and OUT/search.html (see :mod:`dlopt.search.report`)."""
    if config.search is None:
        raise ConfigError("has no [search] section: nothing to search")
    s = config.search
    storage = check_storage(storage, workers)
    space_of(s)  # choices that would be stored alike are refused first
    for c in s.configs:  # every manual configuration validates, before any file is written
        trial_config(config, c, "check")
    for key, p in s.space.items():
        for choice in p.choices or ():
            trial_config(config, {key: choice}, "check")
    load_splits(config)  # a data file that cannot be read is refused before study.db exists
    url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    with locked(out):
        if store_or_check_config(config, out, resume=True):
            write_config(config, out)  # no checkpoint of its own to read first
        return _search(config, out, url, workers, quiet)


def _search(config: RunConfig, out: Path, url: str, workers: int, quiet: bool) -> SearchResult:
    assert config.search is not None
    s = config.search
    maximize = s.monitor.endswith("accuracy")
    legacy = stored_encoding_is_legacy(url, config.name, s)
    space = space_of(s, legacy=legacy)
    total = planned_trials(space, s.strategy, s.n_trials, s.configs, s.q)
    progress = SearchProgress(
        total, s.monitor, enabled=not quiet, bar=None if workers == 1 else False
    )

    def objective(params: dict[str, Any], trial: optuna.Trial) -> float:
        name = f"trial-{trial.number:04d}"
        progress.started(trial, name)
        run_config = trial_config(config, params, f"{config.name}/{name}")
        pruning = PruneTrial(trial, s.monitor)
        folder = out / name
        if folder.exists():  # a trial interrupted earlier: start it afresh
            shutil.rmtree(folder)
        trial.set_user_attr(RUN_FOLDER, str(folder.resolve()))
        result = train_run(run_config, folder, quiet=True, extra_callbacks=(pruning,))
        if result.interrupted:
            raise SearchInterrupted(result.interrupted)
        final = {**result.trainer.state.metrics, **result.test_metrics}
        for key, value in final.items():  # the last epoch's metrics, then the test split's
            if key != "epoch":
                trial.set_user_attr(key, float(value) if math.isfinite(value) else None)
        trial.set_user_attr("epochs", result.trainer.state.epoch)
        pruning.raise_if_pruned()
        values = [h[s.monitor] for h in result.trainer.state.history if s.monitor in h]
        if not values:
            raise ConfigError(f"search.monitor: {s.monitor!r} is not logged by the runs")
        finite = [v for v in values if math.isfinite(v)]  # a diverged run counts as the worst
        worst = -math.inf if maximize else math.inf
        return (max if maximize else min)(finite) if finite else worst

    try:
        result = search(
            objective,
            space,
            strategy=s.strategy,
            n_trials=s.n_trials,
            configs=[{k: label(v, legacy=legacy) for k, v in c.items()} for c in s.configs],
            q=s.q,
            rounds=s.rounds,
            storage=url,
            study_name=config.name,
            direction="maximize" if maximize else "minimize",
            metric_name=s.monitor,
            pruner=s.pruner,
            seed=s.seed,
            workers=workers,
            callbacks=[progress],
        )
    finally:
        progress.close()
    result = dataclasses.replace(
        result,
        best_params=decoded(s, result.best_params),
        trials=[(decoded(s, params), value, state) for params, value, state in result.trials],
    )
    summary = {
        "monitor": s.monitor,
        "best_params": result.best_params,
        "best_value": result.best_value,
        "trials": [
            {"params": params, "value": value, "state": state}
            for params, value, state in result.trials
        ],
    }
    write_text_atomic(out / "search.json", json.dumps(summary, indent=1))
    write_report(result.study, out / "search.html", target_name=s.monitor, base=out)
    return result
