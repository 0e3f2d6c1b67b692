"""G5: the verdict follows from its numbers (the model average above its members' mean in
every seed, with bagging and with initial values alone)."""

from .claims import check_claim, run_claims


def test_g5_verdict_follows_from_the_numbers(tmp_path):
    entry = run_claims(tmp_path, ["G5"])["G5"]
    n = entry["numbers"]
    pairs = [
        (n[f"{kind}_seed{s}_average"], n[f"{kind}_seed{s}_member_mean"])
        for kind in ("bagging", "initial_values")
        for s in range(n["seeds"])
    ]
    check_claim(tmp_path, entry, all(a > m for a, m in pairs))
    assert len(pairs) == 6 and len(entry["figures"]) == 1
    assert n["bagging_vote"] > 0.8 and n["initial_values_average"] <= 1.0
