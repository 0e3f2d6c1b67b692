"""The module map (issue 15): the lab sits on top; train/ and search/ never import it; modules
stay small enough to read (none over 400 lines, the median at most 200, benchmarks included)."""

from __future__ import annotations

import ast
import statistics

from .conftest import ROOT

SRC = ROOT / "src" / "dlopt"


def _imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_train_and_search_import_nothing_from_the_lab():
    offenders = {}
    for package in ("train", "search"):
        for path in sorted((SRC / package).rglob("*.py")):
            lab = sorted(
                n for n in _imported_modules(path) if n == "dlopt.lab" or n.startswith("dlopt.lab.")
            )
            if lab:
                offenders[str(path.relative_to(ROOT))] = lab
    assert not offenders, offenders


def test_the_check_finds_a_lab_import(tmp_path):
    """The scan above can fail: it sees both import spellings."""
    probe = tmp_path / "probe.py"
    probe.write_text("from dlopt.lab import run\nimport dlopt.lab.config\n")
    assert {"dlopt.lab", "dlopt.lab.run", "dlopt.lab.config"} <= _imported_modules(probe)


def test_no_module_over_400_lines_and_the_median_at_most_200():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in SRC.rglob("*.py")}
    assert len(sizes) > 50
    too_long = {name: n for name, n in sizes.items() if n > 400}
    assert not too_long, too_long
    assert statistics.median(sizes.values()) <= 200
