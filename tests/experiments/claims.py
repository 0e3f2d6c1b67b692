"""Shared checks for the reproduce experiments: run some, then hold each verdict to its numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dlopt.experiments import run_experiments


def run_claims(folder: Path, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Run the experiments `ids` in quick mode into `folder`; results.json entries by id."""
    run_experiments(folder, quick=True, only=ids, quiet=True)
    return {e["id"]: e for e in json.loads((folder / "results.json").read_text())}


def check_claim(folder: Path, entry: dict[str, Any], expected: bool) -> None:
    """No crash; the verdict equals the one recomputed from the numbers; every figure is a PNG."""
    assert entry["error"] is None
    assert entry["confirmed"] == expected
    for name in entry["figures"].values():
        assert (folder / name).read_bytes().startswith(b"\x89PNG")
