"""From per-seed measurements to rows: one decision per sub-claim and data set, the numbers
summarized, and the figure of the tested effects (per-seed points, mean with its CI, margin)."""

from __future__ import annotations

import math
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

from dlopt.experiments.progress import _Progress
from dlopt.experiments.registry import Experiment, Measured, Row, Task
from dlopt.experiments.stats import decide


def rows_of(
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
