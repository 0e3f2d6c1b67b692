"""Every experiment, run over two seeds: one row per sub-claim with the results.json schema,
and every verdict recomputed from the row's own numbers with scipy's t distribution.

The fast suite runs every group but the two heaviest (A4 trains 14 activations on two data
sets, B4 runs 17 trainings: together 60 % of the time); `-m slow` runs them all."""

import json
import math

import numpy as np
import pytest
import scipy.stats

from dlopt.experiments import EXPERIMENTS, run_experiments

REQUIRED = [
    "A4",
    "B2",
    "B4.init",
    "B4.lr",
    "B4.deep-sigmoid",
    "B4.regularizes",
    "C1",
    "C2",
    "C5.underfit",
    "C5.overfit",
    "C5.penalty",
    "D1",
    "E4.input",
    "E4.hidden",
    "E6",
    "F2",
    "F4",
    "G5.bagging",
    "G5.init",
    "G5.architectures",
    "G3.boosting",
    "H5.random-vs-grid",
    "H5.log-scale",
    "H5.grid-cost",
    "H5.coarse-to-fine",
    "I1",
    "I8.newton",
    "I8.cg",
    "I8.second-order-vs-gd",
    "I8.lbfgs-full-batch",
]
NEW = [
    "B1.placement",
    "B4.gradient-flow",
    "C6.modern",
    "F4.subnetworks",
    "E3.elastic",
    "G1.hyperparameters",
    "I8.lbfgs-memory",
    "I8.minibatch",
]


HEAVY = ("A4", "B4")


@pytest.fixture(scope="module", params=["light", pytest.param("all", marks=pytest.mark.slow)])
def report(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    groups = (
        sorted(EXPERIMENTS)
        if request.param == "all"
        else [key for key in sorted(EXPERIMENTS) if key not in HEAVY]
    )
    run_experiments(out, only=groups, quick=True, quiet=True, seeds=2, jobs=2, seed=7)
    expected = {c.id for key in groups for c in EXPERIMENTS[key].claims}
    return out, json.loads((out / "results.json").read_text()), expected


def test_the_required_claims_are_registered():
    registered = {c.id for e in EXPERIMENTS.values() for c in e.claims}
    assert set(REQUIRED + NEW) <= registered
    assert len(registered) >= 36


def _verdict(entry):
    """The verdict from `numbers.effect_per_seed` and `effect`, recomputed independently."""
    x = np.asarray(entry["numbers"]["effect_per_seed"], dtype=float)
    margin, sign = entry["effect"]["margin"], 1 if entry["effect"]["direction"] == "greater" else -1
    if entry["kind"] == "identity":
        return "confirmed" if all(sign * (v - margin) > 0 for v in x) else "refuted"
    if np.ptp(x) == 0:
        low = high = x.mean()
    else:
        half = scipy.stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
        low, high = x.mean() - half, x.mean() + half
    near, far = (low, high) if sign > 0 else (high, low)
    if sign * (near - margin) > 0:
        return "confirmed"
    return "refuted" if sign * (far - margin) < 0 else "inconclusive"


def test_one_row_per_sub_claim_with_the_schema(report):
    out, data, expected = report
    rows = data["rows"]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected
    assert data["meta"] == {"quick": True, "seed": 7, "seeds": 2, "complete": True}
    for r in rows:
        assert {
            "id",
            "claim",
            "kind",
            "verdict",
            "confirmed",
            "seeds",
            "effect",
            "numbers",
            "figures",
        } <= set(r)
        assert r["error"] is None, (r["id"], r["error"])
        assert r["kind"] in ("identity", "empirical")
        assert r["verdict"] in ("confirmed", "refuted", "inconclusive")
        assert r["confirmed"] is (r["verdict"] == "confirmed")
        assert {"name", "mean", "ci_low", "ci_high", "margin"} <= set(r["effect"])
        expected_seeds = 1 if not EXPERIMENTS[r["group"]].seeded else 2
        assert r["seeds"] == len(r["numbers"]["effect_per_seed"]) == expected_seeds
        for name in r["figures"].values():
            assert (out / name).read_bytes().startswith(b"\x89PNG")


def test_every_verdict_follows_from_its_numbers(report):
    _, data, _ = report
    for r in data["rows"]:
        assert r["verdict"] == _verdict(r), r["id"]


def test_the_report_opens_with_the_summary_table(report):
    out, data, _ = report
    page = (out / "index.html").read_text()
    table = page.index("<table>")
    assert table < page.index("<h2") and table < page.index("<figure>")
    assert page.index("<figure>") < page.index("<details>")
    for r in data["rows"]:
        assert f">{r['id']}</a>" in page
