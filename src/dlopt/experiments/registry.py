"""The experiment registry: each "claim to measure" of the SPEC under its feature id (SPEC J4).

An experiment measures, decides CONFIRMED from its numbers with a threshold it states, and
returns an :class:`Outcome`. NOT CONFIRMED is a result to show, not to hide.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlopt._io import write_text_atomic
from dlopt._validation import did_you_mean
from dlopt.errors import DloptError


@dataclass(frozen=True)
class Outcome:
    confirmed: bool
    summary: str  # the verdict's reason, with its threshold
    numbers: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)  # caption → PNG file name in `out`


@dataclass(frozen=True)
class Context:
    """What an experiment gets: where to write, how big to run, and a seed."""

    experiment_id: str
    out: Path
    quick: bool
    seed: int = 0

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
    claim: str
    run: Callable[[Context], Outcome]


@dataclass(frozen=True)
class Result:
    id: str
    claim: str
    confirmed: bool
    summary: str
    numbers: dict[str, Any]
    figures: dict[str, str]
    seconds: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "claim": self.claim,
            "confirmed": self.confirmed,
            "summary": self.summary,
            "numbers": {k: _json_number(v) for k, v in self.numbers.items()},
            "figures": self.figures,
            "seconds": round(self.seconds, 2),
            "error": self.error,
        }


def _json_number(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else str(value)


EXPERIMENTS: dict[str, Experiment] = {}


def experiment(
    id: str, claim: str
) -> Callable[[Callable[[Context], Outcome]], Callable[[Context], Outcome]]:
    """Register `run` as the experiment measuring `claim` (feature `id` of the SPEC)."""

    def register(run: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        if id in EXPERIMENTS:
            raise ValueError(f"experiment id {id!r} registered twice")
        EXPERIMENTS[id] = Experiment(id, claim, run)
        return run

    return register


def select(only: list[str] | None) -> list[Experiment]:
    if not only:
        return [EXPERIMENTS[key] for key in sorted(EXPERIMENTS)]  # SPEC order: A4, B2, …
    for key in only:
        if key not in EXPERIMENTS:
            raise DloptError(
                f"unknown experiment id {key!r}; known: {', '.join(sorted(EXPERIMENTS))}."
                + did_you_mean(key, EXPERIMENTS),
                source="--only",
            )
    return [EXPERIMENTS[key] for key in only]


def run_experiments(
    out: str | Path, *, quick: bool = True, only: list[str] | None = None, quiet: bool = False
) -> list[Result]:
    """Run the selected experiments; write ``out/results.json``, ``out/index.html`` and PNGs."""
    from dlopt.experiments.report import write_report

    chosen = select(only)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for exp in chosen:
        if not quiet:
            print(f"[{exp.id}] {exp.claim}", flush=True)
        start = time.perf_counter()
        try:
            outcome = exp.run(Context(exp.id, out, quick))
            result = Result(
                exp.id,
                exp.claim,
                outcome.confirmed,
                outcome.summary,
                dict(outcome.numbers),
                dict(outcome.figures),
                time.perf_counter() - start,
            )
        except DloptError:
            raise
        except Exception as exc:  # a crashed experiment is reported, and the run says so
            result = Result(
                exp.id,
                exp.claim,
                False,
                "the experiment failed to run",
                {},
                {},
                time.perf_counter() - start,
                error="".join(traceback.format_exception_only(exc)).strip(),
            )
        results.append(result)
        if not quiet:
            verdict = "CONFIRMED" if result.confirmed else "NOT CONFIRMED"
            print(f"[{exp.id}] {verdict} ({result.seconds:.1f} s): {result.summary}", flush=True)
    write_text_atomic(out / "results.json", json.dumps([r.to_json() for r in results], indent=1))
    write_report(out / "index.html", results, quick=quick)
    return results
