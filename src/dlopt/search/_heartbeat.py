"""Heartbeats of running trials, and failing the trials of processes that died.

A trial's process records a heartbeat in Optuna's RDB storage (``record_heartbeat``, the
``trial_heartbeats`` table) every `interval` seconds, the first one `interval` seconds after
the trial starts: a trial shorter than that writes none, so a short trial costs no write
beyond Optuna's own. A running trial is dead when

- its last heartbeat is older than the grace period by the database server's clock (Optuna's
  `fail_stale_trials`), or
- it has no heartbeat and a process waiting for work has seen it so for the grace period by
  its own monotonic clock: a live trial records its first heartbeat after `interval` seconds,
  well inside the grace period, and no two machines' clocks are compared.

The grace period is `GRACE_INTERVALS` intervals plus `GRACE_SLACK_S` seconds: a heartbeat that
waits for the database's write lock, or a process starved of CPU, may be seconds late.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from types import TracebackType
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

GRACE_INTERVALS, GRACE_SLACK_S = 3, 5


def grace_period(interval: int) -> int:
    """Seconds without a heartbeat after which a running trial is failed."""
    return GRACE_INTERVALS * interval + GRACE_SLACK_S


def rdb_backend(study: optuna.Study) -> Any:
    """The study's RDB storage (under Optuna's cache), or None (in memory: one process)."""
    backend = getattr(study._storage, "_backend", None)
    return backend if isinstance(backend, optuna.storages.RDBStorage) else None


class Heartbeat:
    """``with Heartbeat(study, trial_id):`` records the trial's heartbeat every interval."""

    def __init__(self, study: optuna.Study, trial_id: int) -> None:
        self._storage = rdb_backend(study)
        self._interval = getattr(self._storage, "heartbeat_interval", None)
        self._trial_id = trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        assert self._storage is not None and self._interval is not None
        while not self._stop.wait(self._interval):
            self._storage.record_heartbeat(self._trial_id)

    def __enter__(self) -> None:
        if self._storage is not None and self._interval is not None:
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()


class StaleTrials:
    """Fails the running trials of dead processes (see the module docstring); one per process."""

    def __init__(self) -> None:
        self._silent_since: dict[int, float] = {}  # trial id -> first seen without a heartbeat

    def fail(self, study: optuna.Study, trials: list[FrozenTrial]) -> None:
        backend = rdb_backend(study)
        if backend is None or backend.heartbeat_interval is None:
            return
        with warnings.catch_warnings():  # "fail_stale_trials is experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        running = [t._trial_id for t in trials if t.state == TrialState.RUNNING]
        beating = _with_heartbeat(backend, running)
        now, grace = time.monotonic(), backend.grace_period
        for trial_id in list(self._silent_since):
            if trial_id not in running or trial_id in beating:
                del self._silent_since[trial_id]
        for trial_id in running:
            if trial_id in beating:
                continue
            since = self._silent_since.setdefault(trial_id, now)
            if now - since > grace:
                # it may have finished meanwhile, or another process failed it
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    study._storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
                del self._silent_since[trial_id]


def _with_heartbeat(backend: Any, trial_ids: list[int]) -> set[int]:
    if not trial_ids:
        return set()
    import sqlalchemy
    from optuna.storages._rdb.models import TrialHeartbeatModel

    query = sqlalchemy.select(TrialHeartbeatModel.trial_id).where(
        TrialHeartbeatModel.trial_id.in_(trial_ids)
    )
    with backend.engine.connect() as connection:
        return {row[0] for row in connection.execute(query)}
