"""The C1, C2, C5, F4, E4 experiments: each verdict follows from its own numbers."""

import json

import pytest

from .claims import check_claim, run_claims

IDS = ["C1", "C2", "C5", "F4", "E4"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, run_claims(out, IDS)


def _verdict(claim, n):
    if claim == "C1":
        return max(n["max_diff_vs_torch_weight_decay"], n["max_diff_vs_update_formula"]) <= 1e-10
    if claim == "C5":
        best = n["best_test_mse"]
        return (
            n["deg1_train_mse"] >= 1.5 * n["best_degree_train_mse"]
            and n["deg1_test_mse"] >= 2 * best
            and n["deg10_test_mse"] >= 2 * best
            and n["deg10_ridge_test_mse"] <= 1.25 * best
            and n["deg10_ridge_test_mse"] < 0.5 * n["deg10_test_mse"]
        )
    if claim == "C2":
        prox = [v for k, v in n.items() if k.startswith("mlp_proximal")]
        sub = [v for k, v in n.items() if k.startswith("mlp_subgradient")]
        return (
            n["lambdas_with_exact_support"] > 0
            and n["ridge_zeros_on_whole_path"] == 0
            and n["zeros_ridge"] < n["zeros_elastic"] <= n["zeros_lasso"]
            and prox == sorted(prox)
            and len(set(prox)) == len(prox)
            and max(sub) < 0.01
        )
    if claim == "F4":
        return (
            n["gap_with_dropout"] <= 0.75 * n["gap_without_dropout"]
            and abs(n["test_accuracy_classic"] - n["test_accuracy_inverted"]) <= 0.03
            and abs(n["test_accuracy_mc_dropout_50"] - n["test_accuracy_inverted"]) <= 0.03
        )
    return n["gap_input_noise"] < n["gap_no_noise"] and n["gap_hidden_noise"] < n["gap_no_noise"]


@pytest.mark.parametrize("claim", IDS)
def test_verdicts_follow_from_the_numbers(results, claim):
    out, entries = results
    check_claim(out, entries[claim], _verdict(claim, entries[claim]["numbers"]))


def test_regularization_section_trains_from_a_config(tmp_path):
    from dlopt.cli import main

    config = tmp_path / "r.toml"
    config.write_text(
        '[data]\nname = "wine"\n[regularization]\nl1 = 0.01\nproximal = true\n'
        'l2 = 0.001\n[model]\ndropout_mode = "classic"\ndropout = 0.3\n'
        "input_noise = 0.1\n[train]\nepochs = 3\n"
    )
    assert main(["train", str(config), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    history = json.loads((tmp_path / "o" / "history.json").read_text())
    assert {"penalty", "sparsity"} <= set(history[-1])
    bad = tmp_path / "bad.toml"
    bad.write_text("[regularization]\nl1 = -1\n")
    assert main(["train", str(bad)]) == 2
