"""E6: the verdict follows from its numbers (each augmentation's mean ≥ none's + 0.02)."""

import statistics

from .claims import check_claim, run_claims


def test_e6_verdict_follows_from_the_numbers(tmp_path):
    entry = run_claims(tmp_path, ["E6"])["E6"]
    n = entry["numbers"]
    per_seed = {
        v: [n[f"n100_{v}_seed{i}"] for i in range(n["seeds"])] for v in ("none", "crop", "affine")
    }
    for v, scores in per_seed.items():
        assert abs(statistics.fmean(scores) - n[f"n100_{v}_test_accuracy"]) < 1e-12
    expected = all(
        n[f"n100_{v}_test_accuracy"] >= n["n100_none_test_accuracy"] + 0.02
        for v in ("crop", "affine")
    )
    check_claim(tmp_path, entry, expected)
    assert len(entry["figures"]) == 1 and n["seeds"] == 3
