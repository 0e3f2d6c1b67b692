"""Ensembles against references: vmap-ed members equal the members run alone; stacked training
equals training each member alone (same samples, same order, its own Adam); bootstrap, average
and vote against their definitions."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlopt.ensemble import (
    StackedEnsemble,
    average,
    bootstrap_indices,
    fit_stacked,
    member_outputs,
    vote,
)


def make():
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def test_members_run_in_one_call_as_they_would_alone():
    torch.manual_seed(0)
    ensemble = StackedEnsemble(make, 4)
    x = torch.randn(5, 6)
    xs = torch.randn(4, 5, 6)
    together, each = ensemble(x), ensemble(xs, per_member=True)
    for i in range(4):
        alone = ensemble.member(i)
        torch.testing.assert_close(together[i], alone(x))
        torch.testing.assert_close(each[i], alone(xs[i]))
    assert not torch.equal(together[0], together[1])  # each its own initial values
    wide = copy.deepcopy(ensemble).to(torch.float64)  # .to() moves the stacked state only
    torch.testing.assert_close(wide(x.double()), together.double())
    assert len(ensemble.state_dict()) == 4  # two weights, two biases, each stacked


def test_stacked_training_equals_training_each_member_alone():
    torch.manual_seed(1)
    X, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    ensemble = StackedEnsemble(make, 3)
    alone = [ensemble.member(i) for i in range(3)]
    indices = bootstrap_indices(40, 3, torch.Generator().manual_seed(5))
    fit_stacked(ensemble, X, y, epochs=3, batch_size=16, lr=1e-2, indices=indices, seed=7)
    # the reference: the same epochs, orders and batches, one member and one Adam at a time
    generator = torch.Generator().manual_seed(7)
    optimizers = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in alone]
    for _ in range(3):
        order = torch.argsort(torch.rand(3, 40, generator=generator), dim=1)
        epoch = torch.gather(indices, 1, order)
        for start in range(0, 40, 16):
            for i, (model, opt) in enumerate(zip(alone, optimizers, strict=True)):
                idx = epoch[i, start : start + 16]
                opt.zero_grad()
                F.cross_entropy(model(X[idx]), y[idx]).backward()
                opt.step()
    for i, model in enumerate(alone):
        trained = ensemble.member(i)
        for p, q in zip(trained.parameters(), model.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("classes", [2, 10, 15, 16, 100])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_members_loss_is_each_members_cross_entropy_summed(classes, dtype):
    from dlopt.nn.losses import cross_entropy

    g = torch.Generator().manual_seed(classes)
    out = torch.randn(5, 64, classes, generator=g, dtype=dtype, requires_grad=True)
    target = torch.randint(0, classes, (5, 64), generator=g)  # 2, 16, 100: torch's own layout
    loss = cross_entropy(out, target, reduction="sum")
    (grad,) = torch.autograd.grad(loss, out)
    alone = sum(F.cross_entropy(out[m], target[m], reduction="sum") for m in range(5))
    (grad_alone,) = torch.autograd.grad(alone, out)
    torch.testing.assert_close(loss, alone)
    torch.testing.assert_close(grad, grad_alone)


def test_bootstrap_resamples_hold_about_63_percent_of_the_samples():
    idx = bootstrap_indices(10_000, 20, torch.Generator().manual_seed(0))
    distinct = [len(torch.unique(row)) / 10_000 for row in idx]
    assert abs(sum(distinct) / 20 - (1 - math.exp(-1))) < 0.003
    assert idx.min() >= 0 and idx.max() < 10_000


def test_regression_members_train_on_squared_error():
    torch.manual_seed(0)
    X = torch.randn(64, 6)
    y = X @ torch.arange(1.0, 7.0)
    ensemble = StackedEnsemble(lambda: nn.Linear(6, 1), 3)
    history = fit_stacked(ensemble, X, y, epochs=600, batch_size=64, lr=0.1, bootstrap=False)
    assert history.loss[-1] < 1e-8 * history.loss[0]
    weights = ensemble.stacked[0].detach()  # members × 1 × 6: each finds the true weights
    torch.testing.assert_close(
        weights[:, 0], torch.arange(1.0, 7.0).expand(3, 6), atol=1e-4, rtol=0
    )


def test_average_and_vote_follow_their_definitions():
    outputs = torch.randn(5, 30, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(average(outputs), outputs.softmax(-1).mean(0))
    torch.testing.assert_close(average(outputs, probabilities=False), outputs.mean(0))
    votes = vote(outputs)
    predicted = outputs.argmax(-1)
    for j in range(30):
        counts = torch.bincount(predicted[:, j], minlength=4)
        best = (counts == counts.max()).nonzero().flatten()
        mean_p = outputs[:, j].softmax(-1).mean(0)
        assert votes[j] == best[mean_p[best].argmax()]  # plurality; ties by mean probability
    two = torch.tensor([[[2.0, 0.0]], [[0.0, 1.0]]])  # one vote each: the surer member wins
    assert vote(two).item() == 0


def test_member_outputs_of_different_architectures():
    torch.manual_seed(0)
    models = [make(), nn.Sequential(nn.Linear(6, 3)), nn.Sequential(nn.Dropout(0.5), make())]
    x = torch.randn(4, 6)
    out = member_outputs(models, x)
    assert out.shape == (3, 4, 3)
    assert all(m.training for m in models)  # each put back in training mode
    torch.testing.assert_close(out[2], models[2].eval()(x))  # evaluated without dropout


def test_dropout_draws_its_own_mask_per_member():
    torch.manual_seed(0)
    base = nn.Sequential(nn.Dropout(0.5), nn.Linear(6, 3))
    ensemble = StackedEnsemble(lambda: copy.deepcopy(base), 2)  # identical members
    out = ensemble.train()(torch.ones(50, 6))
    assert not torch.equal(out[0], out[1])
    ensemble.eval()
    evaluated = ensemble(torch.ones(50, 6))
    torch.testing.assert_close(evaluated[0], evaluated[1])


def test_bad_ensembles_are_named():
    with pytest.raises(ValueError, match="BatchNorm"):
        StackedEnsemble(lambda: nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), 2)
    with pytest.raises(ValueError, match="members"):
        StackedEnsemble(make, 0)
    with pytest.raises(ValueError, match="empty"):
        member_outputs([], torch.zeros(1, 6))
    with pytest.raises(ValueError, match="members × samples × outputs"):
        vote(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="one row per member"):
        fit_stacked(
            StackedEnsemble(make, 2),
            torch.zeros(4, 6),
            torch.zeros(4).long(),
            indices=torch.zeros(3, 4).long(),
        )


def _train_alone_and_stacked(make_member, members, fused, dtype):
    """fit_stacked vs each member trained alone (same samples and order, its own Adam)."""
    torch.manual_seed(3)
    X = torch.randn(48, 6, dtype=dtype)
    y = torch.randint(0, 3, (48,))
    ensemble = StackedEnsemble(make_member, members, fused=fused).to(dtype)
    alone = [ensemble.member(i) for i in range(members)]
    indices = bootstrap_indices(48, members, torch.Generator().manual_seed(2))
    fit_stacked(ensemble, X, y, epochs=2, batch_size=16, lr=1e-2, indices=indices, seed=4)
    generator = torch.Generator().manual_seed(4)
    optimizers = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in alone]
    for _ in range(2):
        order = torch.argsort(torch.rand(members, 48, generator=generator), dim=1)
        epoch = torch.gather(indices, 1, order)
        for start in range(0, 48, 16):
            for i, (model, opt) in enumerate(zip(alone, optimizers, strict=True)):
                idx = epoch[i, start : start + 16]
                opt.zero_grad()
                F.cross_entropy(model(X[idx]), y[idx]).backward()
                opt.step()
    return ensemble, alone


@pytest.mark.parametrize("fused", [True, False], ids=["bmm", "vmap"])
def test_stacked_training_equals_each_member_alone_in_float64(fused):
    """The batched-linear path (bmm) and vmap both equal one-by-one training to 1e-10."""

    def member():
        return nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3, bias=False))

    ensemble, alone = _train_alone_and_stacked(member, 8, fused, torch.float64)
    assert (ensemble._plan is not None) == fused  # the path under test is the one taken
    for i, model in enumerate(alone):
        for p, q in zip(ensemble.member(i).parameters(), model.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-10)


def test_batched_linear_path_equals_vmap_forward_and_backward():
    torch.manual_seed(0)
    fast = StackedEnsemble(lambda: nn.Sequential(nn.Linear(5, 7), nn.GELU(), nn.Linear(7, 2)), 4)
    slow = copy.deepcopy(fast)
    slow._plan = None  # the vmap path, same parameters
    assert fast._plan is not None
    for x, per_member in ((torch.randn(9, 5), False), (torch.randn(4, 9, 5), True)):
        a, b = fast(x, per_member=per_member), slow(x, per_member=per_member)
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
        a.square().sum().backward()
        b.square().sum().backward()
        for p, q in zip(fast.parameters(), slow.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6)
            p.grad = q.grad = None


def test_batched_linear_path_takes_inputs_with_more_leading_dimensions():
    """A Linear acts on the last dimension (B × T × in): the batched path does the same."""
    torch.manual_seed(0)
    ensemble = StackedEnsemble(lambda: nn.Sequential(nn.Linear(5, 4), nn.Tanh()), 3)
    x, xs = torch.randn(2, 7, 5), torch.randn(3, 2, 7, 5)
    together, each = ensemble(x), ensemble(xs, per_member=True)
    assert together.shape == (3, 2, 7, 4) and each.shape == (3, 2, 7, 4)
    for i in range(3):
        torch.testing.assert_close(together[i], ensemble.member(i)(x))
        torch.testing.assert_close(each[i], ensemble.member(i)(xs[i]))
