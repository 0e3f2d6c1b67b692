"""H5: the verdict follows from its numbers; the grid's trial counts are q^m exactly."""

from .claims import check_claim, run_claims


def test_h5_verdict_follows_from_the_numbers(tmp_path):
    entry = run_claims(tmp_path, ["H5"])["H5"]
    n = entry["numbers"]
    assert n["grid_trials_m1_to_6"] == [3, 9, 27, 81, 243, 729]
    expected = (
        n["random_best_mean"] < n["grid_best"]
        and n["log_spacing_best_loss"] < n["linear_spacing_best_loss"]
        and 2 <= n["grid_time_growth_m5_to_6"] <= 4.5
        and n["coarse_to_fine_45_best_mean"] < n["random_45_best_mean"]
    )
    check_claim(tmp_path, entry, expected)
    assert abs(n["grid_best"] - (0.5 - 0.37) ** 2) < 1e-12  # the grid's x1 ∈ {0, 0.5, 1}
    assert len(entry["figures"]) == 1
