"""The I8 experiment: its verdict follows from its numbers; its figures exist."""

from .claims import check_claim, run_claims


def test_i8_verdict_follows_from_the_numbers(tmp_path):
    entry = run_claims(tmp_path, ["I8"])["I8"]
    n = entry["numbers"]
    cg = [v for k, v in n.items() if k.endswith("_exact_line_search_iterations_n20")]
    fewer = all(
        n[f"{p}_{m}_iterations"] * 10 <= n[f"{p}_gd_iterations"]
        and n[f"{p}_{m}_converged"] == "True"
        for p in ("rosenbrock", "logreg")
        for m in ("bfgs", "lbfgs", "newton-cg", "newton")
    )
    lbfgs_best = n["mlp_best_loss_L-BFGS"] < min(
        n["mlp_best_loss_Adam lr 1e-2"], n["mlp_best_loss_SGD lr 0.5"]
    )
    expected = n["newton_iterations_on_quadratic"] == 1 and max(cg) <= 20 and fewer and lbfgs_best
    check_claim(tmp_path, entry, expected)
    assert len(entry["figures"]) == 2
