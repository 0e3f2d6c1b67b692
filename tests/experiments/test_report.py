"""The HTML report escapes everything from a run (S5) and survives odd results (P1)."""

from __future__ import annotations

import json
import math
import time
from html.parser import HTMLParser

import pytest

from dlopt.errors import DloptError
from dlopt.experiments import EXPERIMENTS, Result, run_experiments
from dlopt.experiments.report import write_report

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


def _hostile_results() -> list[Result]:
    results = []
    for i, text in enumerate(HOSTILE):
        results.append(
            Result(
                id=f"X{i}{text[:20]}",
                claim=text,
                confirmed=bool(i % 2),
                summary=text,
                numbers={text[:50]: text, "nan": math.nan, "inf": math.inf},
                figures={text: text},
                seconds=0.1,
                error=text,
            )
        )
    return results


def test_hostile_strings_are_escaped(tmp_path):
    """S5: no <script>, no on*= attribute from inputs; the text survives as text."""
    write_report(tmp_path / "index.html", _hostile_results(), quick=True)
    page = (tmp_path / "index.html").read_text()
    parser = Collector()
    parser.feed(page)
    assert "script" not in parser.tags and "img" not in parser.tags
    assert not [a for a in parser.attributes if a.lower().startswith("on")]
    text = "".join(parser.text)
    assert "<script>alert(1)</script>" in text and "{{7*7}}" in text  # shown, not run
    assert "49" not in text.replace("x" * 10_000, "")


def test_empty_nan_and_many_results_render_quickly(tmp_path):
    """P1: an empty report, NaN/inf numbers as text, 1 000 results in < 5 s."""
    write_report(tmp_path / "empty.html", [], quick=True)
    assert "0 of 0 claims" in (tmp_path / "empty.html").read_text()
    many = [Result(f"E{i}", "claim", True, "ok", {"v": math.nan}, {}, 0.0) for i in range(1000)]
    start = time.perf_counter()
    write_report(tmp_path / "many.html", many, quick=False)
    assert time.perf_counter() - start < 5
    assert (tmp_path / "many.html").read_text().count("<h2") == 1000


def test_results_json_schema_for_d1(tmp_path):
    """The reproduce contract: results.json entries carry id, claim, confirmed, figures."""
    results = run_experiments(tmp_path, quick=True, only=["D1"], quiet=True)
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["id"] for r in data] == ["D1"]
    entry = data[0]
    assert {"id", "claim", "confirmed", "figures"} <= set(entry)
    assert entry["confirmed"] is results[0].confirmed and entry["error"] is None
    for name in entry["figures"].values():
        assert (tmp_path / name).stat().st_size > 1000
    numbers = entry["numbers"]
    # the verdict follows from the numbers with the stated thresholds
    expected = (
        numbers["val_loss_final"] >= 1.1 * numbers["val_loss_min"]
        and numbers["val_loss_min_epoch"] < numbers["epochs"] - numbers["patience"]
        and 0 <= numbers["stopped_epoch"] - numbers["val_loss_min_epoch"] <= 2 * numbers["patience"]
        and numbers["test_accuracy_restored"] >= numbers["test_accuracy_last_epoch"]
    )
    assert entry["confirmed"] == expected
    html = (tmp_path / "index.html").read_text()
    assert "data:image/png;base64," in html and "D1" in html


def test_unknown_experiment_ids_are_refused_and_crashes_are_reported(tmp_path, monkeypatch):
    with pytest.raises(DloptError, match=r"known: A4, B2, .*D1"):
        run_experiments(tmp_path, only=["D9"], quiet=True)
    from dlopt.experiments.registry import Experiment

    def crash(ctx):
        raise RuntimeError("deliberate")

    monkeypatch.setitem(EXPERIMENTS, "Z1", Experiment("Z1", "crashes", crash))
    (result,) = run_experiments(tmp_path, only=["Z1"], quiet=True)
    assert not result.confirmed and "deliberate" in result.error
