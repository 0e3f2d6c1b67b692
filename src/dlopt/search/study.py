"""`search()`: one front door for every strategy (SPEC H2), trials persisted by Optuna (H3).

manual, grid, random and coarse-to-fine choose their configurations themselves and enqueue
them in an Optuna study; TPE is Optuna's sampler. Every trial — its parameters, its value, its
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
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from dlopt._validation import check_choice, check_positive_int
from dlopt.search.space import Float, Int, Param, Space, check_space, grid, sample

STRATEGIES = {s: s for s in ("manual", "grid", "random", "coarse-to-fine", "tpe")}
PRUNERS = {"none": None, "median": "median"}

Objective = Callable[..., float]


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
) -> SearchResult:
    """Minimize (or maximize) ``objective(params)`` over `space`; a two-argument objective
    also gets the Optuna trial, to ``report`` intermediate values and be pruned.

    strategy: "manual" (the given `configs`), "grid" (q points per numeric parameter: q^m
    trials, `n_trials` ignored), "random", "coarse-to-fine" (`rounds` rounds), "tpe".
    A search on a storage that already holds the study continues it: finished trials count.

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
    check_space(space)
    if strategy == "manual" and not configs:
        raise ValueError("search(strategy='manual') needs configs=[{...}, ...].")
    if workers > 1 and storage is None:
        raise ValueError(
            "search(workers=...) > 1 needs a storage the workers share, e.g. "
            "storage='sqlite:///study.db'."
        )
    optuna.logging.set_verbosity(logging.ERROR)  # dlopt reports; Optuna's log stays quiet
    sampler = (
        optuna.samplers.TPESampler(seed=seed)
        if strategy == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)  # only draws for trials not enqueued
    )
    study = optuna.create_study(
        storage=storage,
        sampler=sampler,
        pruner=optuna.pruners.MedianPruner() if pruner == "median" else optuna.pruners.NopPruner(),
        study_name=study_name,
        direction=direction,  # type: ignore[arg-type]
        load_if_exists=True,
    )
    wrapped = _wrap(objective, space)
    rng = random.Random(seed)
    if strategy == "coarse-to-fine":
        check_positive_int("rounds", rounds, caller="search")
        per_round = max(1, n_trials // rounds)
        current: dict[str, Param] = dict(space)
        earlier, scheduled = _finished(study), 0  # resuming: rounds already run are not rerun
        waiting = len(_waiting(study))  # queued by an interrupted call: they run first
        for r in range(rounds):
            budget = per_round if r < rounds - 1 else n_trials - per_round * (rounds - 1)
            remaining = min(budget, max(0, scheduled + budget - earlier))
            scheduled += budget
            from_queue = min(waiting, remaining)
            waiting -= from_queue
            fresh = [sample(current, rng) for _ in range(budget)]
            configs = fresh[budget - remaining + from_queue :]
            _run(study, wrapped, configs, workers, storage=storage, waiting=from_queue)
            current = _narrow(space, study, top)
    elif strategy == "tpe":
        _run(study, wrapped, [], workers, n=max(0, n_trials - _finished(study)), storage=storage)
    else:
        planned = (
            list(configs)
            if strategy == "manual"
            else grid(space, q)
            if strategy == "grid"
            else [sample(space, rng) for _ in range(n_trials)]
        )
        done = [t.params for t in study.trials if t.state in _SETTLED]
        queued = _waiting(study)  # enqueued by an interrupted call: still to run, once
        todo = list(planned)
        for params in done + queued:  # resuming: what was tried is not tried again
            if params in todo:
                todo.remove(params)
        _run(study, wrapped, todo, workers, storage=storage, waiting=len(queued))
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        raise RuntimeError("search: no trial completed (all failed or were pruned).")
    return SearchResult(
        dict(study.best_params),
        float(study.best_value),
        [(dict(t.params), t.value, t.state.name) for t in study.trials],
        study,
    )


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


def _run(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    configs: list[dict[str, Any]],
    workers: int,
    n: int | None = None,
    storage: str | None = None,
    waiting: int = 0,
) -> None:
    """Evaluate `configs` (or, with none, `n` trials of the study's own sampler), after the
    `waiting` trials an interrupted call left queued."""
    total = (len(configs) if n is None else n) + waiting
    if total == 0:
        return
    if workers == 1:
        for params in configs:
            study.enqueue_trial(params, skip_if_exists=False)
        study.optimize(objective, n_trials=total)  # an error in the objective propagates
        return
    # several processes on one study, each loading it from the shared storage. Each worker
    # fixes its own configurations through its sampler and creates its own trials: popping
    # one shared queue of enqueued trials races on SQLite (two workers can take one trial)
    assert storage is not None
    context = multiprocessing.get_context("fork")
    processes = []
    for w in range(workers):
        share = configs[w::workers] if configs else None
        count = len(share) if share is not None else total // workers + (w < total % workers)
        if count:
            args = (storage, study.study_name, objective, share, count, study.sampler)
            processes.append(context.Process(target=_worker, args=args))
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
    storage: str,
    name: str,
    objective: Callable[[optuna.Trial], float],
    configs: list[dict[str, Any]] | None,
    count: int,
    sampler: optuna.samplers.BaseSampler,
) -> None:
    optuna.logging.set_verbosity(logging.ERROR)
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    if configs is None:
        study.optimize(objective, n_trials=count)
        return
    for params in configs:
        with warnings.catch_warnings():  # "PartialFixedSampler is experimental" (since 2.4)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.sampler = optuna.samplers.PartialFixedSampler(params, sampler)
        study.optimize(objective, n_trials=1)


_SETTLED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def _waiting(study: optuna.Study) -> list[dict[str, Any]]:
    """Parameters of enqueued trials not yet run (left by an interrupted search)."""
    return [
        dict(t.params or t.system_attrs.get("fixed_params", {}))
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    ]


def _finished(study: optuna.Study) -> int:
    """Trials that need no rerun: completed or pruned (a failed one is tried again)."""
    return sum(t.state in _SETTLED for t in study.trials)


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
