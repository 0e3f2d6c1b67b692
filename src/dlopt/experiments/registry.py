"""The experiment registry: the chapter's claims, one row per sub-claim, measured over seeds.

An *experiment* (a group under a SPEC feature id, e.g. ``B4``) runs once per seed and returns a
:class:`Measured`: one effect per sub-claim (``B4.init``, ``B4.lr``, …) and descriptive
numbers. The runner repeats it over a block of independent seeds (and, in full mode, over
several data sets) and decides each sub-claim with :func:`dlopt.experiments.stats.decide`.
Margins and directions are fixed in the :class:`Claim` before anything runs.
"""

from __future__ import annotations

import json
import math
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlopt._io import write_text_atomic
from dlopt._processes import die_with_parent
from dlopt._validation import unknown
from dlopt.errors import DloptError
from dlopt.experiments.progress import RUN_SECONDS, _Progress
from dlopt.experiments.stats import INTERVAL, Decision, derive, seed_block

QUICK_SEEDS, FULL_SEEDS = 5, 10


@dataclass(frozen=True)
class Claim:
    """One sub-claim: its per-seed effect must lie `direction` of `margin`."""

    id: str
    claim: str
    effect: str  # what one seed's value is, e.g. "test accuracy, BN − no BN"
    margin: float
    direction: str = "greater"  # "greater": effect > margin supports the claim; "less": <
    kind: str = "empirical"  # or "identity": an exact check, decided on every value


@dataclass
class Measured:
    """What one seed of an experiment measured."""

    effects: dict[str, float]  # claim id → this seed's effect
    numbers: dict[str, Any] = field(default_factory=dict)  # "ID:name" → that row only; else all
    figures: dict[str, str] = field(default_factory=dict)  # caption → PNG name in `out`


@dataclass(frozen=True)
class Context:
    """What one run of an experiment gets: where to write, how big, its seed and data set."""

    experiment_id: str
    out: Path
    quick: bool
    seed: int = 0
    data: str = "digits"
    first: bool = True  # the first seed of the first data set: draws the descriptive figures

    def derive(self, key: int) -> int:
        """An independent seed for this run's sub-run `key`."""
        return derive(self.seed, key)

    def figure(self, name: str) -> Path:
        return self.out / f"{self.experiment_id}-{name}.png"

    def save(self, fig: Any, name: str) -> str:
        """Write `fig` as this experiment's figure `name`; its file name, for the report."""
        from dlopt._plots import save_figure

        save_figure(fig, self.figure(name))
        return self.figure(name).name


@dataclass(frozen=True)
class Experiment:
    id: str
    title: str
    claims: tuple[Claim, ...]
    run: Callable[[Context], Measured]
    datasets: tuple[str, ...]  # quick mode uses the first; full mode all of them
    seeded: bool  # False: deterministic, run once (identity checks only)


@dataclass(frozen=True)
class Row:
    """One sub-claim's result (a row of results.json)."""

    id: str
    claim: str
    kind: str
    group: str
    effect_name: str
    margin: float
    direction: str
    decisions: dict[str, Decision]  # data set → decision
    values: dict[str, list[float]]  # data set → effect per seed
    seeds: list[int]
    numbers: dict[str, Any]
    figures: dict[str, str]
    error: str | None = None

    @property
    def dataset(self) -> str:
        return next(iter(self.decisions))

    @property
    def decision(self) -> Decision:
        return self.decisions[self.dataset]

    @property
    def verdict(self) -> str:
        return "inconclusive" if self.error else self.decision.verdict

    @property
    def confirmed(self) -> bool:
        return self.verdict == "confirmed"

    def to_json(self) -> dict[str, Any]:
        d = self.decision
        return {
            "id": self.id,
            "claim": self.claim,
            "kind": self.kind,
            "group": self.group,
            "verdict": self.verdict,
            "confirmed": self.confirmed,
            "seeds": len(self.values[self.dataset]),
            "dataset": self.dataset,
            "effect": {
                "name": self.effect_name,
                "mean": _json_number(d.mean),
                "ci_low": _json_number(d.ci_low),
                "ci_high": _json_number(d.ci_high),
                "se": _json_number(d.se),
                "margin": self.margin,
                "direction": self.direction,
                "interval": INTERVAL if self.kind == "empirical" else "range of the values",
            },
            "datasets": {
                name: {
                    "verdict": "inconclusive" if self.error else dec.verdict,
                    "mean": _json_number(dec.mean),
                    "ci_low": _json_number(dec.ci_low),
                    "ci_high": _json_number(dec.ci_high),
                    "effect_per_seed": [_json_number(v) for v in self.values[name]],
                }
                for name, dec in self.decisions.items()
            },
            "numbers": {
                "effect_per_seed": [_json_number(v) for v in self.values[self.dataset]],
                "seed_values": self.seeds,
                **{k: _json_value(v) for k, v in self.numbers.items()},
            },
            "figures": self.figures,
            "error": self.error,
        }


def _json_number(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return _json_number(value)


EXPERIMENTS: dict[str, Experiment] = {}


def experiment(
    id: str,
    title: str,
    claims: Sequence[Claim],
    *,
    datasets: Sequence[str] = ("digits", "mnist1d"),
    seeded: bool = True,
) -> Callable[[Callable[[Context], Measured]], Callable[[Context], Measured]]:
    """Register `run` as the experiment measuring `claims` (feature `id` of the SPEC)."""

    def register(run: Callable[[Context], Measured]) -> Callable[[Context], Measured]:
        if id in EXPERIMENTS:
            raise ValueError(f"experiment id {id!r} registered twice")  # a bug in dlopt (exit 1)
        EXPERIMENTS[id] = Experiment(id, title, tuple(claims), run, tuple(datasets), seeded)
        return run

    return register


def all_claim_ids() -> list[str]:
    return [c.id for e in EXPERIMENTS.values() for c in e.claims]


def select(only: Sequence[str] | None) -> list[tuple[Experiment, set[str]]]:
    """The experiments to run, each with the ids of the rows to keep (case-insensitive)."""
    ordered = [EXPERIMENTS[key] for key in sorted(EXPERIMENTS)]  # SPEC order: A4, B2, …
    if not only:
        return [(e, {c.id for c in e.claims}) for e in ordered]
    chosen: dict[str, set[str]] = {}
    for key in only:
        folded = key.strip().casefold()
        groups = [e for e in ordered if e.id.casefold() == folded]
        rows = [(e, c) for e in ordered for c in e.claims if c.id.casefold() == folded]
        if groups:
            chosen.setdefault(groups[0].id, set()).update(c.id for c in groups[0].claims)
        elif rows:
            chosen.setdefault(rows[0][0].id, set()).add(rows[0][1].id)
        else:
            known = sorted(set(EXPERIMENTS) | set(all_claim_ids()))
            raise DloptError(
                unknown("claim id", key, known),
                source="--only",
            )
    return [(e, chosen[e.id]) for e in ordered if e.id in chosen]


Task = tuple[str, str, int, int, bool]  # experiment id, data set, seed index, seed, first


def _run_task(task: Task, out: Path, quick: bool) -> Measured | str:
    """One seed of one experiment: its measurements, or the error text if it crashed."""
    from dlopt.train.progress import quiet_trainers

    exp_id, data, _, seed, first = task
    exp = EXPERIMENTS[exp_id]
    try:
        with quiet_trainers():  # the experiment's many models: reproduce shows its own progress
            return exp.run(Context(exp_id, out, quick, seed, data, first))
    except DloptError:
        raise
    except Exception as exc:  # a crashed experiment is reported, and the run says so
        return "".join(traceback.format_exception_only(exc)).strip()


def _worker_init(parent: int) -> None:
    """A worker process: one intra-op thread (the pool is the parallelism), Ctrl-C left to the
    parent, warnings kept off the progress output."""
    import signal
    import warnings

    die_with_parent(parent)  # first: importing torch can take seconds on a loaded machine
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    import dlopt.experiments  # noqa: F401  (registers the experiments in this process)


def run_experiments(
    out: str | Path,
    *,
    quick: bool = True,
    only: Sequence[str] | None = None,
    quiet: bool = False,
    seed: int = 0,
    seeds: int | None = None,
    jobs: int = 1,
) -> list[Row]:
    """Run the selected experiments over `seeds` seeds (drawn from the block `seed`) in `jobs`
    processes; write ``out/results.json``, ``out/index.html`` and the PNGs. On Ctrl-C a
    partial report marked incomplete is written before the interrupt goes on."""
    from dlopt.experiments.report import write_report

    if seeds is not None and not 1 <= seeds <= 1000:
        raise DloptError(f"must be between 1 and 1000; got {seeds}.", source="--seeds")
    if not 0 <= seed < 2**63:
        raise DloptError(f"must be between 0 and 2**63 - 1; got {seed}.", source="--seed")
    if not 1 <= jobs <= 64:
        raise DloptError(f"must be between 1 and 64; got {jobs}.", source="--jobs")
    chosen = select(only)
    n_seeds = seeds or (QUICK_SEEDS if quick else FULL_SEEDS)
    block = seed_block(seed, n_seeds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tasks: list[Task] = []
    for exp, _ in chosen:
        datasets = exp.datasets[:1] if quick else exp.datasets
        for j, data in enumerate(datasets):
            for i, s in enumerate(block if exp.seeded else block[:1]):
                tasks.append((exp.id, data, i, s, i == 0 and j == 0))
    progress = _Progress([_weight(t) for t in tasks], quiet)
    done: dict[tuple[str, str, int], Measured | str] = {}
    complete = False
    try:
        for task, result in _execute(tasks, out, quick, jobs, progress):
            done[task[0], task[1], task[2]] = result
        complete = True
    finally:
        from dlopt.experiments.rows import rows_of  # rows.py imports this module's types

        progress.close()
        rows = [
            row
            for exp, keep in chosen
            for row in rows_of(exp, keep, tasks, done, out, progress if complete else None)
        ]
        meta = {"quick": quick, "seed": seed, "seeds": n_seeds, "complete": complete}
        payload = json.dumps({"meta": meta, "rows": [r.to_json() for r in rows]}, indent=1)
        write_text_atomic(out / "results.json", payload)
        write_report(out / "index.html", rows, meta=meta)
    return rows


def _weight(task: Task) -> float:
    """What one run is expected to cost, relative to the others (for the remaining time)."""
    return RUN_SECONDS.get(task[0], 3.0)


def _execute(
    tasks: list[Task], out: Path, quick: bool, jobs: int, progress: _Progress
) -> Iterator[tuple[Task, Measured | str]]:
    def label(task: Task) -> str:
        exp_id, data, i, _, _ = task
        return f"[{exp_id}] {data}, seed {i + 1}"

    if jobs == 1:
        for task in tasks:
            progress.begin(label(task))
            result = _run_task(task, out, quick)
            progress.advance(
                label(task) + (" failed" if isinstance(result, str) else ""), _weight(task)
            )
            yield task, result
        return
    import concurrent.futures
    import multiprocessing

    pool = concurrent.futures.ProcessPoolExecutor(
        jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(os.getpid(),),
    )
    try:
        futures = {pool.submit(_run_task, t, out, quick): t for t in tasks}
        progress.begin(f"{len(tasks)} runs in {jobs} processes")
        for future in concurrent.futures.as_completed(futures):
            task = futures[future]
            result = future.result()
            progress.advance(
                label(task) + (" failed" if isinstance(result, str) else ""), _weight(task)
            )
            yield task, result
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()  # an interrupt stops the workers now, not after their runs
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
