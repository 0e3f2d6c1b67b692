"""The self-contained HTML report: every claim, its verdict, numbers and plots (inline PNGs).

Every string that comes from a run (names, numbers, messages) goes through ``html.escape``;
the page has no script and no template engine.
"""

from __future__ import annotations

import base64
import datetime
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dlopt._io import write_text_atomic

if TYPE_CHECKING:
    from dlopt.experiments.registry import Result

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
.ok{color:#0a7d2c;font-weight:bold} .no{color:#b3261e;font-weight:bold}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;font-size:.9em} img{max-width:100%;margin:.5em 0;border:1px solid #eee}
pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap} figcaption{font-size:.85em;color:#555}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_report(path: Path, results: Sequence[Result], *, quick: bool) -> None:
    confirmed = sum(r.confirmed for r in results)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>dlopt: the chapter's claims, measured</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>dlopt — the chapter's claims, measured</h1>",
        f"<p>{confirmed} of {len(results)} claims confirmed · mode "
        f"{'quick' if quick else 'full'} · {_e(datetime.date.today().isoformat())}</p>",
        "<table><tr><th>id</th><th>claim</th><th>verdict</th><th>seconds</th></tr>",
    ]
    for r in results:
        parts.append(
            f"<tr><td><a href='#{_e(r.id)}'>{_e(r.id)}</a></td><td>{_e(r.claim)}</td>"
            f"<td>{_verdict(r.confirmed)}</td><td>{r.seconds:.1f}</td></tr>"
        )
    parts.append("</table>")
    for r in results:
        parts.append(f"<h2 id='{_e(r.id)}'>{_e(r.id)} — {_e(r.claim)}</h2>")
        parts.append(f"<p>{_verdict(r.confirmed)}: {_e(r.summary)}</p>")
        if r.error:
            parts.append(f"<pre>{_e(r.error)}</pre>")
        if r.numbers:
            parts.append("<table><tr><th>measure</th><th>value</th></tr>")
            parts += [
                f"<tr><td>{_e(k)}</td><td>{_e(_number(v))}</td></tr>" for k, v in r.numbers.items()
            ]
            parts.append("</table>")
        for caption, name in r.figures.items():
            data = _png(path.parent, name)
            if data is None:
                parts.append(f"<p>(figure {_e(name)[:200]} is missing)</p>")
            else:
                parts.append(
                    f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,"
                    f"{data}'><figcaption>{_e(caption)}</figcaption></figure>"
                )
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


def _verdict(confirmed: bool) -> str:
    return (
        "<span class='ok'>CONFIRMED</span>"
        if confirmed
        else "<span class='no'>NOT CONFIRMED</span>"
    )
