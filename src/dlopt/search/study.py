"""`search()`: one front door for every strategy (SPEC H2), trials persisted by Optuna (H3).

manual, grid, random and coarse-to-fine choose their configurations themselves: the plan,
written once into the study, and claimed entry by entry by every process on it, so that each
configuration runs exactly once however many processes or machines share the study (see
`dlopt.search._claim`); TPE is Optuna's sampler, after ten random entries. Every trial — its parameters, its value, its
state — lives in the study's storage: in memory by default, a SQLite file
(``storage="sqlite:///study.db"``) to resume a search or share it between worker processes,
PostgreSQL for workers on many machines. Coarse-to-fine: `rounds` rounds of random search at
an equal share of the budget; after each, every numeric range shrinks to the span of the best
`top` trials so far (widened by half that span, in log x for log-scale parameters) and the
categories to those they used.
"""

from __future__ import annotations

import inspect
import logging
import multiprocessing
import os
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from dlopt._processes import die_with_parent
from dlopt._validation import check_choice, check_positive_int
from dlopt.errors import InvalidParameterError
from dlopt.search._claim import ClaimLock, Planned, RoundMaker, run_plan
from dlopt.search._heartbeat import grace_period
from dlopt.search._storage import database_url
from dlopt.search.space import Float, Int, Param, Space, check_space, grid, sample

STRATEGIES = {s: s for s in ("manual", "grid", "random", "coarse-to-fine", "tpe")}
PRUNERS = {"none": None, "median": "median"}

Objective = Callable[..., float]
TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]
ROUNDS = "dlopt:rounds"  # coarse-to-fine: each round's size and space, as it was planned


@dataclass(frozen=True)
class SearchResult:
    best_params: dict[str, Any]
    best_value: float
    trials: list[tuple[dict[str, Any], float | None, str]]  # (params, value, state name)
    study: optuna.Study


def search(
    objective: Objective,
    space: Space,
    *,
    strategy: str = "random",
    n_trials: int = 64,
    configs: Sequence[dict[str, Any]] = (),
    q: int = 3,
    rounds: int = 3,
    top: int = 3,
    storage: str | None = None,
    study_name: str = "dlopt",
    direction: str = "minimize",
    pruner: str = "none",
    seed: int = 0,
    workers: int = 1,
    heartbeat_interval: int = 10,
    metric_name: str | None = None,
    callbacks: Sequence[TrialCallback] = (),
) -> SearchResult:
    """Minimize (or maximize) ``objective(params)`` over `space`; a two-argument objective
    also gets the Optuna trial, to ``report`` intermediate values and be pruned.

    strategy: "manual" (the given `configs`), "grid" (q points per numeric parameter: q^m
    trials, `n_trials` ignored), "random", "coarse-to-fine" (`rounds` rounds), "tpe".
    A search on a storage that already holds the study continues it: finished trials count.
    Any number of processes (`workers`, or ``search`` calls on other machines) may run one
    study: each planned configuration runs once. A trial whose process stops sending a
    heartbeat every `heartbeat_interval` seconds (a SQLite or database storage) is failed
    after three intervals and five seconds, and run again. `metric_name` names the objective
    in the study (what optuna-dashboard and ``trials_dataframe`` show); each of `callbacks` is
    called as ``callback(study, frozen_trial)`` after every trial, as in ``optuna.Study.optimize``.

    >>> from dlopt.search import Float
    >>> result = search(lambda p: (p["x"] - 0.3) ** 2, {"x": Float(0, 1)}, n_trials=30)
    >>> round(result.best_params["x"], 1)
    0.3
    """
    check_choice("strategy", strategy, STRATEGIES, caller="search")
    check_choice("pruner", pruner, PRUNERS, caller="search")
    check_choice("direction", direction, {"minimize": 0, "maximize": 1}, caller="search")
    check_positive_int("n_trials", n_trials, caller="search")
    check_positive_int("workers", workers, caller="search")
    check_positive_int("heartbeat_interval", heartbeat_interval, caller="search")
    check_space(space)
    if strategy == "manual" and not configs:
        raise InvalidParameterError("search(strategy='manual') needs configs=[{...}, ...].")
    if workers > 1 and storage is None:
        raise InvalidParameterError(
            "search(workers=...) > 1 needs a storage the workers share, e.g. "
            "storage='sqlite:///study.db'."
        )
    if strategy == "coarse-to-fine":
        check_positive_int("rounds", rounds, caller="search")
    optuna.logging.set_verbosity(logging.ERROR)  # dlopt reports; Optuna's log stays quiet
    spec = StudySpec(storage, study_name, direction, pruner, strategy, seed, heartbeat_interval)
    study = spec.open()
    if metric_name is not None and study.metric_names != [metric_name]:
        with warnings.catch_warnings():  # set_metric_names: "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([metric_name])
    sizes, make_round = _plan(space, strategy, n_trials, configs, q, rounds, top, seed)
    wrapped = _wrap(objective, space)
    if workers == 1:
        run_plan(study, wrapped, sizes, make_round, ClaimLock(storage, study_name), callbacks)
    else:
        _fork_workers(spec, wrapped, sizes, make_round, workers, callbacks)
    trials = study.get_trials(deepcopy=False)  # one read; best_* would read them again
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in trials):
        raise RuntimeError("search: no trial completed (all failed or were pruned).")
    best = study.best_trial
    return SearchResult(
        dict(best.params),
        float(best.value),  # type: ignore[arg-type]
        [(dict(t.params), t.value, t.state.name) for t in trials],
        study,
    )


@dataclass(frozen=True)
class StudySpec:
    """Everything a process needs to open the study: the parent and every worker open it
    here, so all of them share one direction, pruner and sampler."""

    storage: str | None
    name: str
    direction: str
    pruner: str
    strategy: str
    seed: int
    heartbeat_interval: int

    def open(self, worker: int = 0) -> optuna.Study:
        with warnings.catch_warnings():  # constant_liar, heartbeats: "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            base = (
                # constant_liar: a running trial counts as a bad one, so that processes
                # sampling at once do not all propose the same point
                optuna.samplers.TPESampler(seed=self.seed + worker, constant_liar=True)
                if self.strategy == "tpe"
                else optuna.samplers.RandomSampler(seed=self.seed + worker)
            )
            storage = self._storage()
        return optuna.create_study(
            storage=storage,
            sampler=Planned(base),
            pruner=optuna.pruners.MedianPruner()
            if self.pruner == "median"
            else optuna.pruners.NopPruner(),
            study_name=self.name,
            direction=self.direction,  # type: ignore[arg-type]
            load_if_exists=True,
        )

    def _storage(self) -> optuna.storages.BaseStorage | None:
        if self.storage is None:
            return None
        engine_kwargs: dict[str, Any] = {}
        if self.storage.startswith("sqlite"):  # several processes wait for the write lock
            engine_kwargs["connect_args"] = {"timeout": 60}
        import sqlalchemy.exc

        for attempt in range(10):
            try:
                return optuna.storages.RDBStorage(
                    database_url(self.storage),
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=self.heartbeat_interval,
                    grace_period=grace_period(self.heartbeat_interval),  # then it fails
                )
            except sqlalchemy.exc.DBAPIError:
                # processes starting at once on a new database race to create its tables;
                # the loser finds them made on the next try
                if attempt == 9:
                    raise
                time.sleep(0.2 + 0.1 * attempt)
        raise AssertionError("unreachable")


TPE_STARTUP = 10  # TPE's own n_startup_trials: these are random plan entries instead


def _plan(
    space: Space,
    strategy: str,
    n_trials: int,
    configs: Sequence[dict[str, Any]],
    q: int,
    rounds: int,
    top: int,
    seed: int,
) -> tuple[list[int], RoundMaker]:
    """The plan as round sizes and a function that writes a round's configurations; only
    coarse-to-fine has more than one round, each sampled where the earlier ones did best.
    TPE entries after the first random ones are empty: TPE chooses their values."""
    if strategy == "coarse-to-fine":
        per_round = max(1, n_trials // rounds)
        sizes = [per_round] * (rounds - 1) + [n_trials - per_round * (rounds - 1)]

        def fine(study: optuna.Study, r: int) -> list[dict[str, Any]]:
            current = _narrow(space, study, top) if r else dict(space)
            rounds_so_far = list(study.user_attrs.get(ROUNDS, []))
            if len(rounds_so_far) == r:  # written once, under the claim lock
                entry = {"size": sizes[r], "space": {k: describe(p) for k, p in current.items()}}
                study.set_user_attr(ROUNDS, [*rounds_so_far, entry])
            rng = random.Random(f"{seed}/{r}")  # str seeds hash alike in every process
            return [sample(current, rng) for _ in range(sizes[r])]

        return sizes, fine
    rng = random.Random(seed)
    planned = (
        list(configs)
        if strategy == "manual"
        else grid(space, q)
        if strategy == "grid"
        else [sample(space, rng) for _ in range(n_trials)]
        if strategy == "random"
        else [sample(space, rng) for _ in range(min(n_trials, TPE_STARTUP))]
        + [{}] * max(0, n_trials - TPE_STARTUP)
    )
    return [len(planned)], lambda study, r: planned


def planned_trials(
    space: Space, strategy: str, n_trials: int, configs: Sequence[dict[str, Any]], q: int
) -> int:
    """How many trials `search()` runs with these arguments (its progress's N)."""
    return (
        len(configs)
        if strategy == "manual"
        else len(grid(space, q))
        if strategy == "grid"
        else n_trials
    )


def describe(p: Param) -> dict[str, Any]:
    """A parameter's range as JSON: low, high and log, or the choices."""
    if isinstance(p, Float | Int):
        return {"low": p.low, "high": p.high, "log": p.log}
    return {"choices": list(p.choices)}


def _wrap(objective: Objective, space: Space) -> Callable[[optuna.Trial], float]:
    takes_trial = len(inspect.signature(objective).parameters) >= 2

    def run(trial: optuna.Trial) -> float:
        params: dict[str, Any] = {}
        for name, p in space.items():
            if p.when is not None and params.get(p.when[0]) not in p.when[1]:
                continue
            if isinstance(p, Float):
                params[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
            elif isinstance(p, Int):
                params[name] = trial.suggest_int(name, p.low, p.high, log=p.log)
            else:
                params[name] = trial.suggest_categorical(name, list(p.choices))
        return float(objective(params, trial) if takes_trial else objective(params))

    return run


def _fork_workers(
    spec: StudySpec,
    objective: Callable[[optuna.Trial], float],
    sizes: list[int],
    make_round: RoundMaker,
    workers: int,
    callbacks: Sequence[TrialCallback],
) -> None:
    """`workers` forked processes on the study, each claiming entries until none is left;
    they die with this process (even a SIGKILLed one)."""
    context = multiprocessing.get_context("fork")
    args = (spec, objective, sizes, make_round, callbacks, os.getpid())
    processes = [
        context.Process(target=_worker, args=(*args, w + 1), daemon=True) for w in range(workers)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(
            f"search: {len(failed)} worker process(es) failed (exit codes {failed})."
        )


def _worker(
    spec: StudySpec,
    objective: Callable[[optuna.Trial], float],
    sizes: list[int],
    make_round: RoundMaker,
    callbacks: Sequence[TrialCallback],
    parent: int,
    worker: int,
) -> None:
    die_with_parent(parent)  # as reproduce's workers do
    optuna.logging.set_verbosity(logging.ERROR)
    study = spec.open(worker)
    run_plan(study, objective, sizes, make_round, ClaimLock(spec.storage, spec.name), callbacks)


def _narrow(space: Space, study: optuna.Study, top: int) -> dict[str, Param]:
    """Each range shrunk to the best `top` completed trials (widened by half their span)."""
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
    done = [
        (sign * float(t.value), t)
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
    ]
    done.sort(key=lambda pair: pair[0])
    best = [t for _, t in done[:top]]
    narrowed: dict[str, Param] = {}
    for name, p in space.items():
        values = [t.params[name] for t in best if name in t.params]
        narrowed[name] = p.narrowed(values, 0.5) if values else p
    return narrowed
