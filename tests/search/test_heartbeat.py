"""dlopt's heartbeat: the first beat comes one interval into a trial (a short trial writes
none); a running trial without any beat is failed once a waiting process has seen it so for the
grace period, one whose beats are fresh is not."""

from __future__ import annotations

import time
import warnings

import optuna
import pytest

from dlopt.search._heartbeat import Heartbeat, StaleTrials, _with_heartbeat, grace_period


@pytest.fixture
def study(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1, grace_period=1
        )
    return optuna.create_study(storage=storage)


def ask(study):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "heartbeat ... used with Study.optimize"
        return study.ask()


def test_grace_period_is_three_intervals_and_five_seconds():
    assert grace_period(1) == 8 and grace_period(10) == 35


def test_the_first_heartbeat_comes_one_interval_into_the_trial(study):
    backend = study._storage._backend
    short, long = ask(study), ask(study)
    with Heartbeat(study, short._trial_id):
        time.sleep(0.1)
    with Heartbeat(study, long._trial_id):
        time.sleep(1.3)
    assert _with_heartbeat(backend, [short._trial_id, long._trial_id]) == {long._trial_id}


def test_a_trial_without_heartbeat_fails_after_a_waiter_saw_it_for_the_grace_period(study):
    storage = study._storage
    silent, beating = ask(study), ask(study)  # silent: its process died before the first beat
    storage.record_heartbeat(beating._trial_id)
    stale = StaleTrials()
    stale.fail(study, study.get_trials(deepcopy=False))  # first seen: nothing fails yet
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {silent.number: "RUNNING", beating.number: "RUNNING"}
    time.sleep(1.2)
    storage.record_heartbeat(beating._trial_id)
    stale.fail(study, study.get_trials(deepcopy=False))
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {silent.number: "FAIL", beating.number: "RUNNING"}
