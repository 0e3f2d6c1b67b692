"""Several processes on one study (SQLite, and PostgreSQL where DLOPT_TEST_POSTGRES_URL names a
server): every planned trial runs exactly once, a SIGKILLed process's trial is failed after
its heartbeat stops and run again, workers keep the study's pruner and die with their parent."""

from __future__ import annotations

import math
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest

from dlopt.search import Float, grid, search
from dlopt.search._claim import PLAN, entry_of
from dlopt.search._storage import database_url

SPACE = {"x": Float(0.0, 1.0), "y": Float(0.0, 1.0)}
POSTGRES = os.environ.get("DLOPT_TEST_POSTGRES_URL")
needs_postgres = pytest.mark.skipif(
    POSTGRES is None, reason="DLOPT_TEST_POSTGRES_URL is not set (.ci/run starts a server)"
)

# one search process: a trivial objective that takes `delay` seconds and records its pid; with
# hold >= 0, trial number `hold` (plan entry `hold`, whichever process runs it) writes
# "pid number" to `marker` and waits there to be SIGKILLed
WORKER = """
import os, sys, time
from dlopt.search import Float, search
url, name, strategy, delay, workers, hold, marker = sys.argv[1:8]
def objective(params, trial):
    trial.set_user_attr("pid", os.getpid())
    if trial.number == int(hold):
        draft = f"{marker}.{os.getpid()}"
        with open(draft, "w") as f:
            f.write(f"{os.getpid()} {trial.number}")
        try:
            os.link(draft, marker)  # only the first one: the link exists afterwards
            time.sleep(600)
        except FileExistsError:
            pass
    time.sleep(float(delay))
    return (params["x"] - 0.3) ** 2 + (params["y"] - 0.6) ** 2
search(objective, {"x": Float(0.0, 1.0), "y": Float(0.0, 1.0)}, strategy=strategy,
       n_trials=9, q=3, rounds=3, storage=url, study_name=name, heartbeat_interval=1,
       workers=int(workers))
"""


def storages(tmp_path):
    return {"sqlite": f"sqlite:///{tmp_path / 'study.db'}", "postgresql": POSTGRES}


@pytest.fixture
def launch(tmp_path):
    """Start one search process; at the end of the test, every one started has ended."""
    started = []

    def start(url, name, strategy, delay, workers=1, hold=-1):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        marker = tmp_path / f"held-{name}"
        args = [url, name, strategy, str(delay), str(workers), str(hold), str(marker)]
        log = (tmp_path / f"stderr-{len(started)}.txt").open("w")
        process = subprocess.Popen([sys.executable, "-c", WORKER, *args], env=env, stderr=log)
        process.log = log.name
        started.append((process, log))
        return process

    yield start
    for process, log in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()


def finished_ok(process):
    assert process.wait(timeout=120) == 0, pathlib.Path(process.log).read_text()[-2000:]


def load(url, name):
    return optuna.load_study(study_name=name, storage=database_url(url))


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def assert_each_entry_settled_once(study, n):
    trials = study.get_trials()
    settled = [entry_of(t) for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert sorted(settled) == list(range(n)), "every planned trial exactly once"
    assert not [t for t in trials if t.state.name == "RUNNING"], "none left running"
    plan = study.user_attrs[PLAN]
    for t in trials:
        if t.state.name == "COMPLETE":
            assert t.params == pytest.approx(plan[entry_of(t)])
    return trials


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def test_three_processes_run_each_grid_point_once(tmp_path, launch, kind):
    url, name = storages(tmp_path)[kind], f"grid-{uuid.uuid4().hex[:8]}"
    processes = [launch(url, name, "grid", 0.0) for _ in range(3)]
    for p in processes:
        finished_ok(p)
    study = load(url, name)
    trials = assert_each_entry_settled_once(study, 9)
    assert len(trials) == 9
    expected = sorted((p["x"], p["y"]) for p in grid(SPACE, 3))
    assert sorted((t.params["x"], t.params["y"]) for t in trials) == expected


def kill_one_mid_trial(launch, tmp_path, url, name, after, strategy="coarse-to-fine"):
    """Three processes; the trial of plan entry `after` waits, and its process is SIGKILLed
    there (a round barrier lets no trial start at an arbitrary count of finished ones). Returns the study when the two others have finished it, and
    the killed trial's entry."""
    processes = {p.pid: p for p in (launch(url, name, strategy, 0.2, hold=after) for _ in range(3))}
    marker, deadline = tmp_path / f"held-{name}", time.monotonic() + 90
    while not marker.exists():  # wait on the state (a trial inside the objective), not on time
        assert time.monotonic() < deadline, f"trial {after} did not start"
        assert all(p.poll() is None for p in processes.values()), "a process ended early"
        time.sleep(0.05)
    pid, number = map(int, marker.read_text().split())
    victim = processes.pop(pid)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    for p in processes.values():
        finished_ok(p)
    study = load(url, name)
    return study, entry_of(study.trials[number])


def check_killed_run(study, entry):
    trials = assert_each_entry_settled_once(study, 9)
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert [entry_of(t) for t in failed] == [entry]  # the killed trial, and only it
    retried = [t for t in trials if entry_of(t) == entry]
    assert [t.state.name for t in retried] == ["FAIL", "COMPLETE"]
    assert len(trials) == 10


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def test_a_process_killed_mid_trial_loses_nothing_and_its_trial_runs_again(tmp_path, launch, kind):
    url = storages(tmp_path)[kind]
    study, entry = kill_one_mid_trial(launch, tmp_path, url, f"kill-{uuid.uuid4().hex[:8]}", 3)
    check_killed_run(study, entry)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def test_kills_at_random_points(tmp_path, launch, kind):
    rng = random.Random(17)
    for point in sorted(rng.sample(range(1, 8), 5)):
        url = storages(tmp_path)[kind]
        name = f"kill{point}-{uuid.uuid4().hex[:8]}"
        study, entry = kill_one_mid_trial(launch, tmp_path, url, name, point)
        check_killed_run(study, entry)


def curve(params, trial):
    for step in range(6):
        value = params["x"] + 1.0 / (step + 1)
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def test_four_workers_keep_pruner_none(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    result = search(
        curve, SPACE, strategy="random", n_trials=16, storage=url, pruner="none", workers=4
    )
    states = [state for _, _, state in result.trials]
    assert states == ["COMPLETE"] * 16  # the median pruner would stop about half


def test_an_interrupted_coarse_to_fine_search_resumes_every_configuration(tmp_path):
    url, calls = f"sqlite:///{tmp_path / 'study.db'}", []

    def interrupted(params):
        calls.append(params)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C inside the third trial
        return math.hypot(params["x"] - 0.3, params["y"] - 0.6)

    with pytest.raises(KeyboardInterrupt):
        search(interrupted, SPACE, strategy="coarse-to-fine", n_trials=6, rounds=3, storage=url)
    result = search(
        interrupted, SPACE, strategy="coarse-to-fine", n_trials=6, rounds=3, storage=url
    )
    plan = result.study.user_attrs[PLAN]
    assert calls[3] == calls[2] == plan[2]  # the interrupted configuration runs first
    assert calls[3:] == plan[2:]
    assert len({tuple(p.values()) for p in calls[3:]}) == 4  # no configuration twice


def test_workers_die_with_the_search_process(tmp_path, launch):
    url, name = f"sqlite:///{tmp_path / 'study.db'}", "orphans"
    parent = launch(url, name, "grid", 30.0, workers=2)
    deadline = time.monotonic() + 60
    pids: set[int] = set()
    while len(pids) < 2:
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.1)
        try:
            pids = {t.user_attrs["pid"] for t in load(url, name).trials if "pid" in t.user_attrs}
        except KeyError:
            continue
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "a worker outlived the search process"
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def test_the_claims_query_reads_what_get_trials_reads(kind, tmp_path):
    """The one query the claim loop makes on a database gives each trial's entry and state as
    Optuna's own reading of the trials does: tags, and every state."""
    from dlopt.search._claim import ENTRY, Claims, _claims

    url = database_url(storages(tmp_path)[kind])
    study = optuna.create_study(storage=url, study_name=f"claims-{uuid.uuid4().hex[:8]}")
    for state in ("COMPLETE", "FAIL", "PRUNED", "RUNNING", "COMPLETE", "WAITING"):
        if state == "WAITING":
            study.enqueue_trial({})
            continue
        trial = study.ask()
        if trial.number == 4:
            trial.set_user_attr(ENTRY, 1)  # a retry of the failed entry 1
        if state != "RUNNING":
            study.tell(
                trial,
                1.0 if state == "COMPLETE" else None,
                state=getattr(optuna.trial.TrialState, state),
            )
    expected = sorted((entry_of(t), t.state) for t in study.get_trials(deepcopy=False))
    assert sorted(_claims(study)) == expected
    assert [state.name for _, state in expected].count("RUNNING") == 1
    assert (1, optuna.trial.TrialState.COMPLETE) in expected  # the tag, not the number 4

    def everything():
        return [(entry_of(t), t.state) for t in study.get_trials(deepcopy=False)]

    known = Claims()  # the incremental read: the finished trials before the RUNNING one kept
    assert known.read(study) == everything() and len(known.finished) == 3
    running = study.get_trials(deepcopy=False)[3]
    study.tell(running.number, 2.0)  # trial 3 finishes, and the waiting trial 5 starts
    assert study.ask().number == 5
    assert _claims(study, since=4) == everything()[4:]
    assert known.read(study) == everything() and len(known.finished) == 5
    study.tell(5, 3.0)
    study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)  # a new trial, 6
    assert known.read(study) == everything() and len(known.finished) == 7
