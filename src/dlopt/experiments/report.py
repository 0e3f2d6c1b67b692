"""The self-contained HTML report: every sub-claim, its verdict, numbers and plots (inline PNGs).

Every string that comes from a run (names, numbers, messages) goes through ``html.escape``;
the page has no script and no template engine.
"""

from __future__ import annotations

import base64
import datetime
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlopt._io import write_text_atomic
from dlopt.experiments.stats import INTERVAL

if TYPE_CHECKING:
    from dlopt.experiments.registry import Row

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
.ok{color:#0a7d2c;font-weight:bold} .no{color:#b3261e;font-weight:bold}
.mid{color:#b07d00;font-weight:bold} .note{font-size:.85em;color:#444} details{margin:.3em 0}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;font-size:.9em} img{max-width:100%;margin:.5em 0;border:1px solid #eee}
pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap} figcaption{font-size:.85em;color:#555}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return str(value)


def write_report(path: Path, rows: Sequence[Row], *, meta: dict[str, Any]) -> None:
    """The summary table first (sub-claim, verdict, effect with its interval, seeds, data
    sets), then one section per experiment: its rows, figures, and numbers folded away."""
    counts = {
        v: sum(r.verdict == v for r in rows) for v in ("confirmed", "refuted", "inconclusive")
    }
    mode = "quick" if meta.get("quick") else "full"
    mixed = sum(len({dec.verdict for dec in r.decisions.values()}) > 1 for r in rows)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>dlopt: the chapter's claims, measured</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>dlopt — the chapter's claims, measured</h1>",
    ]
    if not meta.get("complete", True):
        parts.append(
            "<p class='no'>INCOMPLETE: the run was interrupted; rows below are the "
            "ones finished before it stopped.</p>"
        )
    parts.append(
        f"<p>{len(rows)} sub-claims: {counts['confirmed']} confirmed, {counts['refuted']} "
        f"refuted, {counts['inconclusive']} inconclusive · mode {mode} · "
        f"{_e(meta.get('seeds'))} seeds from seed block {_e(meta.get('seed'))} · "
        f"{_e(datetime.date.today().isoformat())}</p>"
        f"<p class='note'>Each empirical row decides on one effect per seed (a paired "
        f"difference: both arms share that seed's data split, initialization and batch order), "
        f"with a {_e(INTERVAL)}: <b>confirmed</b> when the interval clears the margin stated "
        f"before running, <b>refuted</b> when it lies on the other side, "
        f"<b>inconclusive</b> otherwise. Identity rows are exact checks, decided on every "
        f"value. The verdict, effect and interval columns are those of each row's first data "
        f"set (<code>dataset</code> in results.json); the last column gives the verdict on "
        f"every data set the row ran on"
        + (f", and {mixed} rows whose data sets disagree say so." if mixed else ".")
        + "</p>"
    )
    parts.append(
        "<table><tr><th>sub-claim</th><th>verdict</th><th>effect</th><th>mean [95 % CI]</th>"
        "<th>margin</th><th>seeds</th><th>data sets</th></tr>"
    )
    for r in rows:
        d = r.decision
        sign = ">" if r.direction == "greater" else "<"
        per_data = ", ".join(
            f"{_e(name)}: {_verdict(dec.verdict, short=True)}" for name, dec in r.decisions.items()
        )
        parts.append(
            f"<tr><td><a href='#{_e(r.group)}'>{_e(r.id)}</a><br><small>{_e(r.claim)}</small>"
            f"</td><td>{_verdict(r.verdict)}"
            + (
                "<br><small>differs by data set</small>"
                if len({dec.verdict for dec in r.decisions.values()}) > 1
                else ""
            )
            + f"</td><td><small>{_e(r.effect_name)}</small></td>"
            f"<td>{_e(_number(d.mean))} [{_e(_number(d.ci_low))}, {_e(_number(d.ci_high))}]"
            f"</td><td>{sign} {_e(_number(r.margin))}</td>"
            f"<td>{len(r.values[r.dataset])}</td><td>{per_data}</td></tr>"
        )
    parts.append("</table>")
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.group, []).append(r)
    for group, members in groups.items():
        parts.append(f"<h2 id='{_e(group)}'>{_e(group)}</h2>")
        for r in members:
            parts.append(f"<p>{_verdict(r.verdict)} <b>{_e(r.id)}</b> — {_e(r.claim)}</p>")
            if r.error:
                parts.append(f"<pre>{_e(r.error)}</pre>")
        for caption, name in members[0].figures.items():
            data = _png(path.parent, name)
            if data is None:
                parts.append(f"<p>(figure {_e(name)[:200]} is missing)</p>")
            else:
                parts.append(
                    f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,"
                    f"{data}'><figcaption>{_e(caption)}</figcaption></figure>"
                )
        for r in members:
            parts.append(
                f"<details><summary>numbers of {_e(r.id)}</summary><table>"
                "<tr><th>measure</th><th>value</th></tr>"
            )
            shown = {"effect per seed": r.values[r.dataset], "seeds": r.seeds, **r.numbers}
            parts += [
                f"<tr><td>{_e(k)}</td><td>{_e(_number(v))}</td></tr>" for k, v in shown.items()
            ]
            parts.append("</table></details>")
    parts.append("</body></html>\n")
    write_text_atomic(path, "\n".join(parts))


def _png(folder: Path, name: str) -> str | None:
    """Base64 of a PNG that lies directly in `folder` (no paths, no other files), else None."""
    if len(name) > 200 or Path(name).name != name or not name.endswith(".png"):
        return None
    try:
        data = (folder / name).read_bytes()
    except OSError:
        return None
    return base64.b64encode(data).decode("ascii") if data.startswith(b"\x89PNG") else None


def _verdict(verdict: str, *, short: bool = False) -> str:
    css = {"confirmed": "ok", "refuted": "no"}.get(verdict, "mid")
    word = verdict if short else verdict.upper()
    return f"<span class='{css}'>{_e(word)}</span>"
