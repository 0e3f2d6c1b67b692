"""The HTML report escapes everything from a run (S5) and survives odd results (P1)."""

from __future__ import annotations

import json
import math
import time
from html.parser import HTMLParser

import pytest

from dlopt.errors import DloptError
from dlopt.experiments import EXPERIMENTS, Claim, Experiment, Measured, Row, run_experiments
from dlopt.experiments.report import write_report
from dlopt.experiments.stats import Decision

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{7*7}}",
    "nul\x00 and rtl\u202e text",
    "x" * 10_000,
    "' onmouseover='alert(1)",
]


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]

    def handle_data(self, data):
        self.text.append(data)


def _row(id, claim, verdict="confirmed", value=1.0, numbers=None, figures=None, error=None):
    decision = Decision(verdict, value, value - 0.1, value + 0.1, 0.05)
    return Row(
        id,
        claim,
        "empirical",
        id.split(".")[0],
        claim,
        0.0,
        "greater",
        {"digits": decision},
        {"digits": [value, value]},
        [1, 2],
        numbers or {},
        figures or {},
        error,
    )


def _hostile_results() -> list[Row]:
    return [
        _row(
            f"X{i}{text[:20]}",
            text,
            ("confirmed", "refuted")[i % 2],
            numbers={text[:50]: text, "nan": math.nan, "inf": math.inf},
            figures={text: text},
            error=text,
        )
        for i, text in enumerate(HOSTILE)
    ]


META = {"quick": True, "seed": 0, "seeds": 2, "complete": True}


def test_hostile_strings_are_escaped(tmp_path):
    """S5: no <script>, no on*= attribute from inputs; the text survives as text."""
    write_report(tmp_path / "index.html", _hostile_results(), meta=META)
    page = (tmp_path / "index.html").read_text()
    parser = Collector()
    parser.feed(page)
    assert "script" not in parser.tags and "img" not in parser.tags
    assert not [a for a in parser.attributes if a.lower().startswith("on")]
    text = "".join(parser.text)
    assert "<script>alert(1)</script>" in text and "{{7*7}}" in text  # shown, not run
    assert "49" not in text.replace("x" * 10_000, "")


def test_empty_nan_and_many_results_render_quickly(tmp_path):
    """P1: an empty report, NaN/inf numbers as text, 1 000 rows in < 5 s; an interrupted run
    says so."""
    write_report(tmp_path / "empty.html", [], meta={**META, "complete": False})
    empty = (tmp_path / "empty.html").read_text()
    assert "0 sub-claims" in empty and "INCOMPLETE" in empty
    many = [_row(f"E{i}", "claim", value=math.nan) for i in range(1000)]
    start = time.perf_counter()
    write_report(tmp_path / "many.html", many, meta=META)
    assert time.perf_counter() - start < 5
    assert (tmp_path / "many.html").read_text().count("<h2") == 1000


def test_unknown_ids_are_refused_case_is_ignored_and_crashes_are_reported(tmp_path, monkeypatch):
    with pytest.raises(DloptError, match=r"known: A4, B1.placement, B2, .*D1"):
        run_experiments(tmp_path, only=["D9"], quiet=True)
    with pytest.raises(DloptError, match=r"(?i)did you mean"):
        run_experiments(tmp_path, only=["b4.int"], quiet=True)

    def crash(ctx):
        raise RuntimeError("deliberate")

    claim = Claim("Z1", "crashes", "nothing", 0.0)
    monkeypatch.setitem(
        EXPERIMENTS, "Z1", Experiment("Z1", "crashes", (claim,), crash, ("digits",), True)
    )
    (row,) = run_experiments(tmp_path, only=["z1"], quiet=True, seeds=2)
    assert row.verdict == "inconclusive" and "deliberate" in row.error
    entry = json.loads((tmp_path / "results.json").read_text())["rows"][0]
    assert entry["verdict"] == "inconclusive" and "deliberate" in entry["error"]


def test_interrupt_writes_a_partial_report_marked_incomplete(tmp_path, monkeypatch):
    calls = []

    def measure(ctx):
        calls.append(ctx.seed)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return Measured({"Z2": 1.0 + len(calls)})

    claim = Claim("Z2", "stops", "a value", 0.0)
    monkeypatch.setitem(
        EXPERIMENTS, "Z2", Experiment("Z2", "stops", (claim,), measure, ("digits",), True)
    )
    with pytest.raises(KeyboardInterrupt):
        run_experiments(tmp_path, only=["Z2"], quiet=True, seeds=5)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["meta"]["complete"] is False
    assert data["rows"][0]["numbers"]["effect_per_seed"] == [2.0, 3.0]
    assert "INCOMPLETE" in (tmp_path / "index.html").read_text()


def test_ctrl_c_in_the_cli_says_where_the_partial_report_is_and_exits_130(
    tmp_path, monkeypatch, capsys
):
    from dlopt.cli import main

    def measure(ctx):
        raise KeyboardInterrupt

    claim = Claim("Z3", "stops", "a value", 0.0)
    monkeypatch.setitem(
        EXPERIMENTS, "Z3", Experiment("Z3", "stops", (claim,), measure, ("digits",), True)
    )
    out = tmp_path / "report"
    assert main(["reproduce", "--only", "Z3", "--out", str(out), "--quiet", "--jobs", "1"]) == 130
    err = capsys.readouterr().err
    assert f"interrupted: the rows finished so far are in {out / 'index.html'}" in err
    assert "INCOMPLETE" in (out / "index.html").read_text()


def test_workers_die_with_a_sigkilled_reproduce(tmp_path):
    """No orphans: SIGKILL of `dlopt reproduce --jobs 2` ends its worker processes too."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    parent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dlopt.cli",
            "reproduce",
            "--only",
            "H5",
            "--seeds",
            "4",
            "--jobs",
            "2",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def children() -> list[int]:
        found = []
        for task in Path(f"/proc/{parent.pid}/task").glob("*/children"):
            found += [int(p) for p in task.read_text().split()]
        return found

    deadline = time.monotonic() + 60
    while len(children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = children()
    assert len(workers) >= 2
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    # A worker still importing torch when its parent dies (seconds on a loaded machine) has
    # not yet asked for the death signal; it exits as soon as its initializer runs.
    deadline = time.monotonic() + 60
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in workers if Path(f"/proc/{p}").exists() and not _zombie(p)]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, "worker processes outlived the reproduce process"


def _zombie(pid: int) -> bool:
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
