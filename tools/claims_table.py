"""A Markdown table of reproduce runs side by side: one line per sub-claim, the verdict of
each run (per data set for full runs) and the effect with its 95 % interval of the last run.

    python tools/claims_table.py quick=report-0/results.json quick-1000=report-1000/results.json \
        full=report-full/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SHORT = {"confirmed": "✔ confirmed", "refuted": "✘ refuted", "inconclusive": "? inconclusive"}


def _number(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"


def main(argv: list[str]) -> int:
    runs = []
    for arg in argv:
        label, _, path = arg.partition("=")
        if not path:
            print(f"error: expected LABEL=PATH; got {arg!r}", file=sys.stderr)
            return 2
        runs.append((label, {r["id"]: r for r in json.loads(Path(path).read_text())["rows"]}))
    if not runs:
        print(__doc__)
        return 2
    ids = list(runs[-1][1])
    header = ["sub-claim"]
    for label, rows in runs:
        names = next(iter(rows.values()))["datasets"] if len(rows) else {}
        multi = any(len(r["datasets"]) > 1 for r in rows.values())
        header += [f"{label}: {name}" for name in names] if multi else [label]
    last = runs[-1][1]
    header += ["effect", f"mean [95 % CI] ({runs[-1][0]}, first data set)", "margin"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for claim in ids:
        cells = [claim]
        for _, rows in runs:
            row = rows.get(claim)
            multi = any(len(r["datasets"]) > 1 for r in rows.values())
            if multi:
                names = list(next(r for r in rows.values() if len(r["datasets"]) > 1)["datasets"])
                for name in names:
                    d = (row or {}).get("datasets", {}).get(name)
                    cells.append(SHORT[d["verdict"]] if d else "—")
            else:
                cells.append(SHORT[row["verdict"]] if row else "—")
        e = last[claim]["effect"]
        sign = ">" if e["direction"] == "greater" else "<"
        cells += [
            e["name"],
            f"{_number(e['mean'])} [{_number(e['ci_low'])}, {_number(e['ci_high'])}]",
            f"{sign} {e['margin']:.3g}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
