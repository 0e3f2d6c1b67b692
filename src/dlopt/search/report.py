"""OUT/search.html: a search drawn with Optuna's own matplotlib visualizations, in one
self-contained page (PNGs inline as base64, no script).

The page shows the study's summary and best trial, then the optimization history (each trial's
value and the best so far), the parallel coordinates (one line per trial across every
parameter, coloured by its value), the parameter importances (Optuna's default evaluator,
PED-ANOVA; drawn only with at least two parameters and `MIN_IMPORTANCE_TRIALS` completed
trials, and the page says why when it is not), and for coarse-to-fine the range each round
sampled, with the trials drawn inside it. Every trial's row links its run folder.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from dlopt._io import write_text_atomic
from dlopt.search._claim import entry_of
from dlopt.search.study import ROUNDS

RUN_FOLDER = "run_folder"  # the user attribute that names a trial's run folder
MIN_IMPORTANCE_TRIALS = 8

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em} h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;font-size:.88em} img{max-width:100%;margin:.5em 0;border:1px solid #eee}
.note{font-size:.9em;color:#555} .best{background:#eef7ee}
"""


def write_report(
    study: optuna.Study, path: Path, *, target_name: str | None = None, base: Path | None = None
) -> Path:
    """Write the page for `study` to `path`; run folders are linked relative to `base`."""
    name = target_name or (study.metric_names or ["Objective Value"])[0]
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>dlopt search: {_e(study.study_name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Search {_e(study.study_name)}</h1>",
        f"<p>{_e(study.direction.name.lower())} <b>{_e(name)}</b> · "
        + " · ".join(f"{n} {k}" for k, n in counts.items() if n)
        + "</p>",
    ]
    best = _best(study, complete)
    if best is not None:
        parts.append(
            f"<p>best {_e(name)} <b>{_number(best.value)}</b> at trial {best.number}: "
            f"{_e(_params_text(best))}</p>"
        )
    figures: list[tuple[str, Callable[[], Any] | str]] = [
        ("Optimization history", lambda: _vis().plot_optimization_history(study, target_name=name)),
        ("Parallel coordinates", lambda: _vis().plot_parallel_coordinate(study, target_name=name)),
        ("Parameter importances", _importances(study, complete, name)),
    ]
    rounds = study.user_attrs.get(ROUNDS)
    if rounds:
        figures.append(
            (
                "Coarse-to-fine: the range of each round (bars; dots: completed trials, "
                "darker is better; crosses: pruned)",
                lambda: _rounds(study, rounds),
            )
        )
    for title, draw in figures:
        parts.append(f"<h2>{_e(title)}</h2>")
        if isinstance(draw, str):
            parts.append(f"<p class='note'>{_e(draw)}</p>")
        elif not complete:
            parts.append("<p class='note'>Not drawn: no trial has completed yet.</p>")
        else:
            png, notes = _png(draw)
            parts.append(f"<img alt='{_e(title)}' src='data:image/png;base64,{png}'>")
            parts += [f"<p class='note'>Optuna: {_e(n)}</p>" for n in notes]
    parts.append("<h2>Trials</h2>" + _table(trials, best, name, base or path.parent))
    parts.append("</body></html>")
    write_text_atomic(path, "\n".join(parts))
    return path


def _vis() -> Any:
    import optuna.visualization.matplotlib as vis

    return vis


def _importances(
    study: optuna.Study, complete: list[FrozenTrial], name: str
) -> Callable[[], Any] | str:
    params = {p for t in complete for p in t.params}
    if len(params) < 2:
        return f"Not drawn: importances compare parameters, and this search has {len(params)}."
    if len(complete) < MIN_IMPORTANCE_TRIALS:
        return (
            f"Not drawn: {len(complete)} completed trials; importances need at least "
            f"{MIN_IMPORTANCE_TRIALS} to mean anything."
        )
    return lambda: _vis().plot_param_importances(study, target_name=name)


def _rounds(study: optuna.Study, rounds: list[dict[str, Any]]) -> Any:
    """One panel per parameter: each round's range as a bar, its completed trials as dots
    coloured by their value (darker is better), its pruned ones as grey crosses."""
    from dlopt._plots import pyplot

    plt = pyplot()  # matplotlib (Agg) only when a page is drawn

    cmap = plt.get_cmap("viridis")
    starts = [sum(r["size"] for r in rounds[:i]) for i in range(len(rounds))]
    names = list(rounds[0]["space"])
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names) + 0.8, 3.4), squeeze=False)
    settled = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    ]
    values = [
        float(t.value) for t in settled if t.state == TrialState.COMPLETE and t.value is not None
    ]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    flip = study.direction == optuna.study.StudyDirection.MAXIMIZE
    for ax, param in zip(axes[0], names, strict=True):
        choices = rounds[0]["space"][param].get("choices")
        for r, entry in enumerate(rounds):
            d = entry["space"][param]
            if choices is None:
                ax.plot([r + 1, r + 1], [d["low"], d["high"]], lw=10, color="#c7d9ee", zorder=1)
            else:
                kept = [choices.index(c) for c in d["choices"] if c in choices]
                ax.scatter([r + 1] * len(kept), kept, marker="s", s=140, color="#c7d9ee")
        for t in settled:
            if param not in t.params:
                continue
            r = max(i for i, s in enumerate(starts) if entry_of(t) >= s)
            v = t.params[param]
            y = choices.index(v) if choices is not None and v in choices else v
            if t.state == TrialState.PRUNED or t.value is None:  # its value: the last report
                ax.scatter(r + 1.15, y, s=16, marker="x", color="#999999", zorder=2)
                continue
            shade = (float(t.value) - lo) / (hi - lo) if hi > lo else 0.5
            ax.scatter(r + 1, y, s=18, color=cmap(1 - shade if flip else shade), zorder=3)
        if choices is not None:
            ax.set_yticks(range(len(choices)), [str(c) for c in choices])
        elif rounds[0]["space"][param].get("log"):
            ax.set_yscale("log")
        ax.set_xticks(range(1, len(rounds) + 1))
        ax.set_xlabel("round")
        ax.set_title(param, fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return axes[0][0]


def _png(draw: Callable[[], Any]) -> tuple[str, list[str]]:
    """The figure `draw` returns (an Axes, or an array of them), as base64 PNG, with the
    warnings Optuna gave while drawing it."""
    from dlopt._plots import pyplot

    plt = pyplot()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        axes = draw()
        first = axes.flat[0] if hasattr(axes, "flat") else axes
        fig = first.figure
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
    notes = sorted(
        {
            str(w.message)
            for w in caught
            if not issubclass(w.category, optuna.exceptions.ExperimentalWarning)
        }
    )
    return base64.b64encode(buffer.getvalue()).decode("ascii"), notes


def _best(study: optuna.Study, complete: list[FrozenTrial]) -> FrozenTrial | None:
    if not complete:
        return None
    pick = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
    return pick(complete, key=lambda t: float(t.value))  # type: ignore[arg-type]


def _table(trials: list[FrozenTrial], best: FrozenTrial | None, name: str, base: Path) -> str:
    rows = [f"<table><tr><th>trial</th><th>state</th><th>{_e(name)}</th><th>parameters</th>"]
    rows[0] += "<th>run</th></tr>"
    for t in trials:
        folder = t.user_attrs.get(RUN_FOLDER)
        link = ""
        if isinstance(folder, str):
            relative = os.path.relpath(folder, base.resolve())
            link = f"<a href='{_e(Path(relative).as_posix())}/'>{_e(Path(folder).name)}</a>"
        mark = " class='best'" if best is not None and t.number == best.number else ""
        rows.append(
            f"<tr{mark}><td>{t.number}</td><td>{t.state.name.lower()}</td>"
            f"<td>{_number(t.value)}</td><td>{_e(_params_text(t))}</td><td>{link}</td></tr>"
        )
    return "\n".join(rows) + "</table>"


def _params_text(trial: FrozenTrial) -> str:
    return ", ".join(f"{k} = {_number(v)}" for k, v in trial.params.items())


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
