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
import sys
import textwrap
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dlopt._io import write_text_atomic
from dlopt._validation import did_you_mean
from dlopt.errors import DloptError
from dlopt.experiments.stats import INTERVAL, Decision, decide, derive, seed_block

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
            raise ValueError(f"experiment id {id!r} registered twice")
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
                f"unknown claim id {key!r}; known: {', '.join(known)}." + did_you_mean(key, known),
                source="--only",
            )
    return [(e, chosen[e.id]) for e in ordered if e.id in chosen]


# Seconds one run of each experiment took in full mode (one thread, `--jobs 2`, 2026-12-02).
# Only the progress estimate reads them: runs differ 100-fold (C5 0.1 s, I8 14 s), so a
# remaining time from the mean run so far was 4x too short while the cheap groups ran.
RUN_SECONDS = {
    "A4": 1.1, "B2": 0.8, "B4": 6.5, "C1": 0.5, "C2": 0.3, "C5": 0.1, "C6": 1.0, "D1": 4.8,
    "E4": 1.0, "E6": 12.8, "F4": 4.0, "G5": 6.3, "H5": 1.3, "I1": 9.2, "I8": 14.4,
}  # fmt: skip


class _Progress:
    """Which claim, which seed, elapsed and remaining: a rich bar on a terminal, lines else.
    The remaining time weighs each run by its experiment's usual cost (RUN_SECONDS)."""

    def __init__(self, weights: Sequence[float], quiet: bool) -> None:
        self.total, self.done, self.quiet, self.start = len(weights), 0, quiet, time.perf_counter()
        self.total_weight, self.done_weight = float(sum(weights)), 0.0
        self.bar: Any = None
        if not quiet and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[runs]}"),
                TimeElapsedColumn(),
                TextColumn("remaining"),
                TimeRemainingColumn(),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(
                "reproduce", total=self.total_weight, runs=f"0/{self.total} runs"
            )

    def begin(self, text: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=text)

    def advance(self, text: str, weight: float) -> None:
        self.done += 1
        self.done_weight += weight
        if self.bar is not None:
            self.bar.update(
                self.task,
                advance=weight,
                description=f"{text} done",
                runs=f"{self.done}/{self.total} runs",
            )
        elif not self.quiet:
            elapsed = time.perf_counter() - self.start
            left = elapsed * (self.total_weight - self.done_weight) / max(self.done_weight, 1e-9)
            print(
                f"[{self.done}/{self.total}] {text} · {elapsed:.0f} s elapsed, ~{left:.0f} s left",
                file=sys.stderr,
                flush=True,
            )

    def say(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


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

    _die_with_parent(parent)  # first: importing torch can take seconds on a loaded machine
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    import dlopt.experiments  # noqa: F401  (registers the experiments in this process)


def _die_with_parent(parent: int) -> None:
    """A worker ends when the reproduce process `parent` does, even if that one was SIGKILLed:
    Linux's PR_SET_PDEATHSIG, elsewhere a thread that watches the parent pid."""
    import signal
    import threading

    if os.getppid() != parent:  # it died while this worker was starting
        os._exit(1)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the parent died before the call
                os._exit(1)
            return
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


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
        progress.close()
        rows = [
            row
            for exp, keep in chosen
            for row in _rows(exp, keep, tasks, done, out, progress if complete else None)
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


def _rows(
    exp: Experiment,
    keep: set[str],
    tasks: list[Task],
    done: dict[tuple[str, str, int], Measured | str],
    out: Path,
    progress: _Progress | None,
) -> list[Row]:
    """The rows of one experiment from its finished runs (all of them, or those that finished
    before an interrupt)."""
    values: dict[str, dict[str, list[float]]] = {c.id: {} for c in exp.claims}
    numbers: dict[str, dict[str, list[Any]]] = {}
    figures: dict[str, str] = {}
    used: list[int] = []
    error = None
    ran = [t for t in tasks if t[0] == exp.id and (t[0], t[1], t[2]) in done]
    if not ran:
        return []
    for _, data, i, s, _ in ran:
        measured = done[exp.id, data, i]
        if isinstance(measured, str):
            error = error or measured
            continue
        if s not in used:
            used.append(s)
        for claim in exp.claims:
            values[claim.id].setdefault(data, []).append(float(measured.effects[claim.id]))
        for key, value in measured.numbers.items():
            numbers.setdefault(data, {}).setdefault(key, []).append(value)
        figures.update(measured.figures)
    rows = []
    for claim in exp.claims:
        if claim.id not in keep:
            continue
        by_data = values[claim.id] or {exp.datasets[0]: []}
        decisions = {
            data: decide(v, claim.margin, claim.direction, claim.kind)
            for data, v in by_data.items()
        }
        first_data = next(iter(by_data))
        rows.append(
            Row(
                claim.id,
                claim.claim,
                claim.kind,
                exp.id,
                claim.effect,
                claim.margin,
                claim.direction,
                decisions,
                by_data,
                used,
                _summarize(numbers.get(first_data, {}), claim.id),
                {},
                error,
            )
        )
    if rows and any(v for r in rows for v in r.values.values()):
        figures = {**_effect_figure(exp, rows, out), **figures}
    rows = [replace(r, figures=figures) for r in rows]
    for r in rows:
        d = r.decision
        if progress is None:
            break
        progress.say(
            f"[{r.id}] {r.verdict.upper()}: {r.effect_name} = {d.mean:.4g} "
            f"[{d.ci_low:.4g}, {d.ci_high:.4g}] vs margin {r.margin:g} ({r.direction}), "
            f"{len(r.values[r.dataset])} seeds" + (f" — error: {r.error}" if r.error else "")
        )
    return rows


def _summarize(numbers: dict[str, list[Any]], claim_id: str) -> dict[str, Any]:
    """The group's numbers for one row: shared ones and this row's ("ID:name"); numeric values
    as their mean over seeds, others as the first seed's."""
    result: dict[str, Any] = {}
    for key, seq in numbers.items():
        owner, _, name = key.rpartition(":")
        if owner and owner != claim_id:
            continue
        name = name if owner else key
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in seq):
            result[name] = float(sum(seq) / len(seq)) if len(seq) > 1 else seq[0]
        else:
            result[name] = seq[0]
    return result


def _effect_figure(exp: Experiment, rows: list[Row], out: Path) -> dict[str, str]:
    """One panel per sub-claim: each seed's effect, the mean with its 95 % interval, the
    margin as a dashed line (the quantity the verdict tests)."""
    from dlopt._plots import figure, save_figure

    fig, axes = figure(len(rows), width=3.4, height=3.2)
    for ax, row in zip(axes, rows, strict=True):
        for j, (data, vals) in enumerate(row.values.items()):
            dec = row.decisions[data]
            xs = [j + 0.3 * (k / max(len(vals) - 1, 1) - 0.5) for k in range(len(vals))]
            ax.scatter(xs, vals, s=12, color="0.55", zorder=2)
            low = dec.mean - dec.ci_low if math.isfinite(dec.ci_low) else 0.0
            high = dec.ci_high - dec.mean if math.isfinite(dec.ci_high) else 0.0
            color = {"confirmed": "#0a7d2c", "refuted": "#b3261e"}.get(dec.verdict, "#b07d00")
            ax.errorbar(
                [j + 0.3],
                [dec.mean],
                yerr=[[low], [high]],
                fmt="D",
                color=color,
                capsize=4,
                zorder=3,
            )
        ax.axhline(row.margin, color="black", linestyle="--", linewidth=1, label="margin")
        ax.set_xticks(range(len(row.values)), list(row.values), fontsize=7)
        ax.set_xlim(-0.5, len(row.values) - 0.2)
        ax.set_title(row.id + "\n" + textwrap.fill(row.effect_name, 42), fontsize=7)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6, loc="best")
    name = f"{exp.id}-effects.png"
    save_figure(fig, out / name)
    return {
        "The tested effect per seed (grey), its mean and 95 % interval (diamond: green "
        "confirmed, red refuted, amber inconclusive), and the margin (dashed)": name
    }
