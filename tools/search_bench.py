"""Measure `dlopt.search` against raw Optuna, and its throughput with several processes.

    python tools/search_bench.py overhead --storage sqlite:///b.db --trials 200
    python tools/search_bench.py overhead --storage memory --trials 200
    python tools/search_bench.py overhead --storage postgresql://postgres@127.0.0.1:55433/dlopt
    python tools/search_bench.py throughput --storage postgresql://… --trials 12 --processes 1 2 3

overhead: a trivial objective (two floats, no work), `search(strategy="random")` against
``optuna.create_study(sampler=RandomSampler(seed)) + optimize`` on the same storage; each
side in its own process (wall time of the search; tracemalloc's peak of Python memory during
it); "optuna-heartbeat" is raw Optuna with Optuna's own heartbeat (interval 10 s). With
``--repeat R`` the three run R times, interleaved, and the ratio is of the medians. Each row
also counts the SQL statements per trial by kind (select, insert, update, ...) and commits.

throughput: N processes each calling `search()` on one study of tiny training runs (digits,
an MLP, 2 epochs, or $BENCH_EPOCHS); trials per second from the first trial's start to the last
one's end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
import uuid


def _one(impl: str, storage: str, trials: int) -> dict[str, float]:
    import optuna

    from dlopt.search import Float, search
    from dlopt.search._storage import database_url

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    name = f"bench-{impl}-{uuid.uuid4().hex[:8]}"
    memory = storage == "memory"  # Optuna's in-memory storage (one process)
    statements = _count_statements()
    tracemalloc.start()
    start = time.perf_counter()
    if impl == "dlopt":
        space = {"x": Float(0.0, 1.0), "y": Float(0.0, 1.0)}
        objective = lambda p: p["x"] + p["y"]  # noqa: E731
        search(
            objective, space, n_trials=trials, storage=None if memory else storage, study_name=name
        )
    else:
        url = None if memory else database_url(storage)
        study = optuna.create_study(
            storage=optuna.storages.RDBStorage(url, heartbeat_interval=10, grace_period=30)
            if impl == "optuna-heartbeat" and url is not None
            else url,
            sampler=optuna.samplers.RandomSampler(seed=0),
            study_name=name,
        )
        study.optimize(
            lambda t: t.suggest_float("x", 0.0, 1.0) + t.suggest_float("y", 0.0, 1.0),
            n_trials=trials,
        )
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    counted = {f"{kind}_per_trial": n / trials for kind, n in sorted(statements.items())}
    return {
        "seconds": seconds,
        "ms_per_trial": 1000 * seconds / trials,
        "peak_mib": peak / 2**20,
        **counted,
    }


def _count_statements() -> dict[str, int]:
    """SQL statements sent from here on, by their first word (SELECT, INSERT, UPDATE, ...),
    and commits: the writes and round trips a trial costs, whatever the machine's load."""
    import collections

    import sqlalchemy

    counts: collections.Counter[str] = collections.Counter()

    def statement(conn, cursor, text, *args) -> None:  # type: ignore[no-untyped-def]
        counts[text.split(None, 1)[0].lower()] += 1

    def commit(conn) -> None:  # type: ignore[no-untyped-def]
        counts["commit"] += 1

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", statement)
    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "commit", commit)
    return counts


def _tiny_training(params: dict) -> float:
    import torch

    from dlopt.data import load_bundled, split_dataset
    from dlopt.nn import mlp
    from dlopt.train import Trainer

    torch.set_num_threads(1)
    splits = split_dataset(load_bundled("digits"), seed=0, train_size=300)
    torch.manual_seed(0)
    model = mlp(64, 10, (32,))
    optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"])
    epochs = int(os.environ.get("BENCH_EPOCHS", 2))
    trainer = Trainer(model, optimizer, max_epochs=epochs, progress=False)
    trainer.fit(splits.train, splits.val)
    return float(trainer.evaluate(splits.val)["loss"])


def _worker(storage: str, name: str, trials: int) -> None:
    from dlopt.search import Float, search

    search(
        _tiny_training,
        {"lr": Float(1e-4, 1e-1, log=True)},
        n_trials=trials,
        storage=storage,
        study_name=name,
    )


def _throughput(storage: str, trials: int, processes: int) -> dict[str, float]:
    import optuna

    from dlopt.search._storage import database_url

    name = f"throughput-{processes}-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        __file__,
        "worker",
        "--storage",
        storage,
        "--trials",
        str(trials),
        "--name",
        name,
    ]
    started = [subprocess.Popen(command, env=env) for _ in range(processes)]
    if any(p.wait() != 0 for p in started):
        raise SystemExit("a worker failed")
    study = optuna.load_study(study_name=name, storage=database_url(storage))
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    span = max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    return {
        "processes": processes,
        "trials": len(done),
        "seconds": span.total_seconds(),
        "trials_per_s": len(done) / span.total_seconds(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["overhead", "throughput", "one", "worker"])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--impl", default="dlopt")
    parser.add_argument("--name", default="")
    parser.add_argument("--repeat", type=int, default=1, help="overhead: interleaved rounds")
    args = parser.parse_args()
    if args.mode == "one":
        print(json.dumps(_one(args.impl, args.storage, args.trials)))
    elif args.mode == "worker":
        _worker(args.storage, args.name, args.trials)
    elif args.mode == "overhead":
        impls = ("optuna", "optuna-heartbeat", "dlopt")
        rows: dict[str, list[dict[str, float]]] = {impl: [] for impl in impls}
        for r in range(args.repeat):  # interleaved, the order reversed every other round
            for impl in impls if r % 2 == 0 else impls[::-1]:
                command = [
                    sys.executable,
                    __file__,
                    "one",
                    "--impl",
                    impl,
                    "--storage",
                    args.storage,
                    "--trials",
                    str(args.trials),
                ]
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                rows[impl].append(json.loads(out.strip().splitlines()[-1]))
                print(impl, rows[impl][-1], flush=True)
        for key in ("seconds", "peak_mib"):
            ours = statistics.median(row[key] for row in rows["dlopt"])
            theirs = statistics.median(row[key] for row in rows["optuna"])
            print(f"dlopt / optuna {key} (medians of {args.repeat}): {ours / theirs:.2f}x")
    else:
        base = None
        for n in args.processes:
            row = _throughput(args.storage, args.trials, n)
            base = base or row["trials_per_s"]
            print({**row, "speed_up": row["trials_per_s"] / base}, flush=True)


if __name__ == "__main__":
    main()
