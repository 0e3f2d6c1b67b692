"""Several processes on one study, each planned configuration run exactly once.

The plan — the list of configurations a search runs, in order — is written once into the
study (its user attribute ``dlopt:plan``), under a lock that holds across processes and
machines: an ``flock`` on the SQLite file, a PostgreSQL advisory lock (``GET_LOCK`` on MySQL).
Under the same lock a process claims the first plan entry that no trial holds (none COMPLETE,
PRUNED or RUNNING) and asks the study for a trial: the storage numbers trials one after the
other, so trial n runs entry n and nothing more is written, unless an earlier trial failed and
its entry is claimed again — then the trial is tagged with its entry (``dlopt:entry``) before
the lock goes. A trial of a worker that died stops sending heartbeats and is failed
(`dlopt.search._heartbeat`); its entry is claimed again. Coarse-to-fine plans grow one round
at a time: the next round is written, once, when every entry of the earlier ones has settled.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study._tell import _tell_with_warning
from optuna.trial import FrozenTrial, TrialState

from dlopt.search._heartbeat import Heartbeat, StaleTrials, rdb_backend

PLAN, ENTRY = "dlopt:plan", "dlopt:entry"
SETTLED = (TrialState.COMPLETE, TrialState.PRUNED)
BUSY = (TrialState.RUNNING, TrialState.WAITING)
POLL_S = 0.25  # how often a process with nothing to claim looks again

Config = dict[str, Any]
RoundMaker = Callable[[optuna.Study, int], list[Config]]  # (study, round) -> its configs


class Planned(BaseSampler):
    """`base`, except for the parameters of the claimed plan entry, which are fixed."""

    def __init__(self, base: BaseSampler) -> None:
        self.base = base
        self.fixed: Config = {}

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        space = {k: d for k, d in search_space.items() if k not in self.fixed}
        return self.base.sample_relative(study, trial, space) if space else {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if param_name in self.fixed:
            return self.fixed[param_name]
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.base.after_trial(study, trial, state, values)


class ClaimLock:
    """A lock on the study that holds across processes; `release` may be called twice."""

    def __init__(self, storage: str | None, study_name: str) -> None:
        self.url, self.name = storage, study_name
        self.scheme = (storage or "memory").partition(":")[0].split("+")[0]
        self._held: Any = None
        self._connection: Any = None

    def acquire(self, study: optuna.Study) -> None:
        if self.scheme == "sqlite":
            fd = _file_lock_fd(self.url.partition(":///")[2])  # type: ignore[union-attr]
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._held = fd
        elif self.scheme in ("postgresql", "mysql"):
            from sqlalchemy import text

            if self._connection is None:  # one connection kept for the lock: 2 round trips
                engine = rdb_backend(study).engine
                self._connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            connection = self._connection
            key = zlib.crc32(self.name.encode())
            if self.scheme == "postgresql":
                connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            else:
                connection.execute(text("SELECT GET_LOCK(:k, -1)"), {"k": f"dlopt-{key}"})
            self._held = connection

    def release(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        if isinstance(held, int):
            fcntl.flock(held, fcntl.LOCK_UN)
            return
        from sqlalchemy import text

        key = zlib.crc32(self.name.encode())
        if self.scheme == "postgresql":
            held.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        else:
            held.execute(text("SELECT RELEASE_LOCK(:k)"), {"k": f"dlopt-{key}"})


_LOCK_FDS: dict[tuple[int, str], int] = {}


def _file_lock_fd(path: str) -> int:
    """One descriptor per process on the SQLite file, never closed: closing a descriptor drops
    the POSIX locks SQLite itself holds on the file (and one inherited through fork would share
    its flock with the parent)."""
    key = (os.getpid(), path)
    if key not in _LOCK_FDS:
        _LOCK_FDS[key] = os.open(path, os.O_RDONLY)
    return _LOCK_FDS[key]


def run_plan(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    sizes: Sequence[int],
    make_round: RoundMaker,
    lock: ClaimLock,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
) -> None:
    """Claim and run plan entries until every one of the ``sum(sizes)`` entries has settled,
    calling each of `callbacks` after each trial (Optuna's ``optimize(callbacks=)``). An error
    in the objective propagates (its trial is recorded as failed)."""
    sampler = study.sampler
    assert isinstance(sampler, Planned)
    total, plan, stale, known = sum(sizes), _read_plan(study), StaleTrials(), Claims()
    while True:
        lock.acquire(study)
        try:
            if len(plan) < total:
                plan = _read_plan(study)
            claims = known.read(study)
            entry = _free_entry(claims, min(len(plan), total))
            if entry is None and len(plan) < total and _all_settled(claims, len(plan)):
                plan = _extend(study, plan, sizes, make_round)
                entry = _free_entry(claims, min(len(plan), total))
            if entry is None:
                if len(plan) >= total and _all_settled(claims, total):
                    return
                stale.fail(study, study.get_trials(deepcopy=False))  # a dead worker's entry frees
            else:
                sampler.fixed = plan[entry]
                trial = _ask(study)
                if trial.number != entry:  # a retry, or an entry after one: tag it
                    trial.set_user_attr(ENTRY, entry)
                lock.release()  # the others see the trial (and its tag) from here on
                _run(study, trial, objective, callbacks)
                continue
        finally:
            lock.release()
        time.sleep(POLL_S)


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():  # the heartbeat is ours (Heartbeat), not optimize's
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used")
        return study.ask()


def _run(
    study: optuna.Study,
    trial: optuna.Trial,
    objective: Callable[[optuna.Trial], float],
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
) -> None:
    """`study.optimize`'s trial: PRUNED on TrialPruned, FAIL (and raised) on an error, FAIL for
    a NaN; a trial failed meanwhile as stale by another process stays failed. Told as
    `optimize` tells (``study.tell`` would read the trial back once more, to return it), and
    then `callbacks` are called with the finished trial, as ``optimize(callbacks=)`` does."""
    with Heartbeat(study, trial._trial_id):
        try:
            value: float | None = objective(trial)
            state = None
        except optuna.TrialPruned:
            value, state = None, TrialState.PRUNED
        except (Exception, KeyboardInterrupt):
            _tell_with_warning(
                study, trial, None, TrialState.FAIL, skip_if_finished=True, suppress_warning=True
            )
            raise
    _tell_with_warning(study, trial, value, state, skip_if_finished=True, suppress_warning=True)
    if callbacks:  # the finished trial read back only for them, as optimize() does
        finished = study._storage.get_trial(trial._trial_id)
        for callback in callbacks:
            callback(study, finished)


def entry_of(trial: FrozenTrial) -> int:
    """The plan entry a trial runs: its number, unless it is tagged with another one."""
    return int(trial.user_attrs.get(ENTRY, trial.number))


def _read_plan(study: optuna.Study) -> list[Config]:
    return list(study.user_attrs.get(PLAN, []))


Claim = tuple[int, TrialState]  # a trial's plan entry and state


class Claims:
    """Every trial's (entry, state), read incrementally. A finished trial (COMPLETE, PRUNED or
    FAIL) never changes, and the storage numbers a study's trials 0, 1, 2, …; so the trials
    before the first unfinished one are kept, and each read asks only for the trials from it
    on — not all of them on every claim, which grows with the study (quadratic in its trials
    overall)."""

    def __init__(self) -> None:
        self.finished: list[Claim] = []  # trials 0 … len − 1, every one finished

    def read(self, study: optuna.Study) -> list[Claim]:
        fresh = _claims(study, since=len(self.finished))
        done = next((i for i, (_, s) in enumerate(fresh) if not s.is_finished()), len(fresh))
        self.finished += fresh[:done]
        return self.finished + fresh[done:]


def _claims(study: optuna.Study, since: int = 0) -> list[Claim]:
    """The (entry, state) of trials `since`, `since` + 1, … in order. On a database, one query
    on Optuna's trials and user attributes tables: reading the trials whole (``get_trials``,
    through Optuna's cache) took ≈ 28 ms a claim at 200 trials on SQLite, a fifth of a trivial
    trial's time."""
    backend = rdb_backend(study)
    if backend is None:
        trials = study.get_trials(deepcopy=False)[since:]
        return [(entry_of(t), t.state) for t in trials]
    import sqlalchemy
    from optuna.storages._rdb.models import TrialModel, TrialUserAttributeModel

    attr = TrialUserAttributeModel
    query = (
        sqlalchemy.select(TrialModel.number, TrialModel.state, attr.value_json)
        .outerjoin(attr, (attr.trial_id == TrialModel.trial_id) & (attr.key == ENTRY))
        .where((TrialModel.study_id == study._study_id) & (TrialModel.number >= since))
        .order_by(TrialModel.number)
    )
    with backend.engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        (number if tag is None else int(json.loads(tag)), state)  # an Enum column: TrialState
        for number, state, tag in rows
    ]


def _entries(claims: Sequence[Claim], states: Sequence[TrialState]) -> set[int]:
    return {entry for entry, state in claims if state in states}


def _free_entry(claims: Sequence[Claim], n: int) -> int | None:
    taken = _entries(claims, (*SETTLED, *BUSY))
    return next((e for e in range(n) if e not in taken), None)


def _all_settled(claims: Sequence[Claim], n: int) -> bool:
    return len(_entries(claims, SETTLED) & set(range(n))) == n


def _extend(
    study: optuna.Study, plan: list[Config], sizes: Sequence[int], make_round: RoundMaker
) -> list[Config]:
    """Append the rest of the round that entry ``len(plan)`` belongs to (under the lock)."""
    start = 0
    for r, size in enumerate(sizes):
        if len(plan) < start + size:
            plan = plan + make_round(study, r)[len(plan) - start : size]
            study.set_user_attr(PLAN, plan)
            return plan
        start += size
    return plan
