"""Weight penalties on networks (C1–C3) and their place in the Trainer."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlopt.data import load_bundled, split_dataset
from dlopt.nn import mlp
from dlopt.regularize import L1, L2, ElasticNet, select_parameters, sparsity
from dlopt.train import Trainer


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3)).double()


def _batch():
    generator = torch.Generator().manual_seed(1)
    return (
        torch.randn(16, 4, generator=generator, dtype=torch.float64),
        torch.randint(0, 3, (16,), generator=generator),
    )


def test_weights_are_penalized_biases_and_batchnorm_are_not():
    model = _model()
    chosen = select_parameters(model)
    assert [p.shape for p in chosen] == [(6, 4), (3, 6)]
    assert len(select_parameters(model, "all")) == len(list(model.parameters()))
    only_first = select_parameters(model, lambda name, p: name.startswith("0."))
    assert len(only_first) == 2


@pytest.mark.parametrize(
    ("penalty", "extra"),
    [
        (L2(0.3), lambda w: 2 * 0.3 * w),
        (L1(0.3), lambda w: 0.3 * torch.sign(w)),
        (ElasticNet(0.3, 0.7), lambda w: 0.3 * (2 * 0.7 * w + torch.sign(w))),
    ],
)
def test_penalty_gradients_follow_the_formulas(penalty, extra):
    """∇(J + λR) = ∇J + λ∇R: 2λW (L2), λ·sign(W) (L1), λ(2βW + sign W) (elastic net)."""
    X, y = _batch()
    plain, penalized = _model(), _model()
    F.cross_entropy(plain(X), y).backward()
    penalty.bind(penalized)
    (F.cross_entropy(penalized(X), y) + penalty.term()).backward()
    for (name, p), q in zip(penalized.named_parameters(), plain.parameters(), strict=True):
        expected = q.grad + (extra(q.detach()) if p.dim() >= 2 else 0)
        torch.testing.assert_close(p.grad, expected, msg=name)


@pytest.mark.parametrize("decoupled", [False, True])
def test_l2_with_sgd_is_torch_weight_decay_in_both_forms(decoupled):
    """C1: Θ ← (1 − 2ρλ)Θ − ρ∇J, i.e. SGD(weight_decay=2λ), coupled or decoupled."""
    X, y = _batch()
    lam, rho = 0.05, 0.2
    ours, theirs = _model(), _model()
    penalty = L2(lam, decoupled=decoupled, include="all")
    opt = torch.optim.SGD(ours.parameters(), lr=rho)
    penalty.bind(ours, opt)
    ref = torch.optim.SGD(theirs.parameters(), lr=rho, weight_decay=2 * lam)
    for _ in range(20):
        opt.zero_grad()
        loss = F.cross_entropy(ours(X), y)
        term = penalty.term()
        (loss + term if term is not None else loss).backward()
        penalty.before_step()
        opt.step()
        penalty.after_step()
        ref.zero_grad()
        F.cross_entropy(theirs(X), y).backward()
        ref.step()
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-10)  # float64 rounding order


def test_decoupled_l2_with_adam_is_adamw():
    X, y = _batch()
    lam, lr = 0.05, 0.01
    ours, theirs = _model(), _model()
    opt = torch.optim.Adam(ours.parameters(), lr=lr)
    penalty = L2(lam, decoupled=True, include="all")
    penalty.bind(ours, opt)
    ref = torch.optim.AdamW(theirs.parameters(), lr=lr, weight_decay=2 * lam)
    for _ in range(10):
        opt.zero_grad()
        F.cross_entropy(ours(X), y).backward()
        penalty.before_step()
        opt.step()
        ref.zero_grad()
        F.cross_entropy(theirs(X), y).backward()
        ref.step()
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def test_proximal_step_is_soft_thresholding_by_lr_times_lambda():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    penalty = L1(0.2, proximal=True)
    penalty.bind(model, opt)
    before = [p.detach().clone() for p in penalty.parameters]
    penalty.after_step()
    for p, b in zip(penalty.parameters, before, strict=True):
        torch.testing.assert_close(p, torch.sign(b) * torch.clamp(b.abs() - 0.1, min=0))
    assert penalty.term() is None


def _digits_sparsity(lam, proximal):
    splits = split_dataset(load_bundled("digits"), seed=0)
    torch.manual_seed(0)
    model = mlp(64, 10, (64,))
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.05),
        max_epochs=2,
        penalties=[L1(lam, proximal=proximal)],
    )
    state = trainer.fit(splits.train, splits.val)
    return state.history[-1]["sparsity"], state.history[-1]


def test_proximal_sparsity_grows_with_lambda_and_the_subgradient_stays_dense():
    """Issue #5: exact zeros reported in the history; ≈ 0 with the subgradient, as expected
    (a subgradient step lands exactly on 0 only by accident)."""
    proximal = [_digits_sparsity(lam, True)[0] for lam in (1e-4, 1e-3, 1e-2)]
    assert proximal[0] < proximal[1] < proximal[2] and proximal[2] > 0.05
    dense, history = _digits_sparsity(1e-2, False)
    assert dense < 0.001
    assert {"penalty", "sparsity", "loss", "val_loss"} <= set(history)
    assert math.isfinite(history["penalty"]) and history["penalty"] > 0


def test_penalties_validate_and_sparsity_counts_exact_zeros():
    with pytest.raises(ValueError, match="lam"):
        L2(-1.0)
    with pytest.raises(ValueError, match="beta"):
        ElasticNet(1.0, -0.5)
    assert sparsity([torch.tensor([0.0, 1.0, 0.0, 2.0])]) == 0.5
