"""The I1 and I8 experiments: their verdicts follow from their numbers; their figures exist;
I1's closed form and per-example gradients against brute force."""

import itertools
import statistics

import pytest
import torch

from dlopt.experiments.gradient_noise import minibatch_noise, per_example_gradients

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


def test_i1_verdict_follows_from_the_numbers(tmp_path):
    entry = run_claims(tmp_path, ["I1"])["I1"]
    n = entry["numbers"]
    z = [v for k, v in n.items() if k.startswith("noise_B") and k.endswith("_z")]
    expected = (
        max(z) <= 4
        and n["momentum_noise_z"] <= 4
        and n["minibatch_final_loss"] < n["full_batch_final_loss"]
    )
    check_claim(tmp_path, entry, expected)
    assert len(z) == 10 and abs(n["fitted_slope_small_batches"] + 1) < 0.1
    assert len(entry["figures"]) == 1


def test_minibatch_noise_formula_against_every_subset():
    """(S/B)(N − B)/(N − 1) is the mean over all C(N, B) mini-batches (brute force, N = 7),
    and the sampled estimate lands within a few of its standard errors."""
    G = torch.randn(7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g_bar, N = G.mean(0), 7
    S = float(((G - g_bar) ** 2).sum(1).mean())
    for B in (1, 2, 3, 5, 7):
        exact = statistics.fmean(
            float(((G[list(c)].mean(0) - g_bar) ** 2).sum())
            for c in itertools.combinations(range(N), B)
        )
        assert exact == pytest.approx(S / B * (N - B) / (N - 1), rel=1e-12, abs=1e-15)
        mean, error = minibatch_noise(G, B, 4000, torch.Generator().manual_seed(B))
        assert abs(mean - exact) <= 5 * error + 1e-15


def test_per_example_gradients_are_each_examples_own():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    model = model.double()
    X, y = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1])
    G = per_example_gradients(model, X, y)
    for i in range(5):
        loss = torch.nn.functional.cross_entropy(model(X[i : i + 1]), y[i : i + 1])
        row = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, model.parameters())])
        torch.testing.assert_close(G[i], row, rtol=1e-12, atol=1e-14)
