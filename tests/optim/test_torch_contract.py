"""The torch.optim contract (after PyTorch's own optimizer tests, adapted) on every dlopt
optimizer class, with torch.optim.LBFGS as the control where torch defines the behaviour."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlopt.optim import (
    BFGS,
    LBFGS,
    Newton,
    NewtonCG,
    NonlinearCG,
    Status,
    minimize,
    step_policy,
)

OPTIMIZERS_UNDER_TEST = {
    "torch-lbfgs": lambda params, **kw: torch.optim.LBFGS(
        params, line_search_fn="strong_wolfe", **kw
    ),
    "lbfgs": LBFGS,
    "bfgs": BFGS,
    "cg": NonlinearCG,
    "newton-cg": NewtonCG,
    "newton": Newton,
}
DLOPT = [name for name in OPTIMIZERS_UNDER_TEST if name != "torch-lbfgs"]


def _make(name, params, **kw):
    return OPTIMIZERS_UNDER_TEST[name](params, **kw)


def _closure(optimizer, loss_fn):
    def closure():
        optimizer.zero_grad()
        loss = loss_fn()
        if step_policy(optimizer).closure_backward:
            loss.backward()
        return loss

    return closure


@pytest.mark.parametrize("name", list(OPTIMIZERS_UNDER_TEST))
def test_sparse_gradients_are_densified(name):
    """nn.Embedding(sparse=True) raised 'reshape is not implemented for sparse tensors' in
    LBFGS, BFGS and CG; densified now, as torch.optim.LBFGS does."""
    torch.manual_seed(0)
    embedding = nn.Embedding(6, 2, sparse=True).double()
    index = torch.tensor([0, 2, 5])
    target = torch.ones(3, 2, dtype=torch.float64)
    optimizer = _make(name, embedding.parameters(), max_iter=50)
    loss = lambda: ((embedding(index) - target) ** 2).sum()  # noqa: E731
    for _ in range(3):
        optimizer.step(_closure(optimizer, loss))
    torch.testing.assert_close(embedding.weight[index].detach(), target, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", DLOPT)
def test_add_param_group_with_other_options_is_refused_up_front(name):
    """{"lr": 1e-30, "max_iter": 1} for the new group was silently ignored (b still moved)."""
    a = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    b = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    optimizer = _make(name, [a])
    with pytest.raises(ValueError, match=r"share its options.*lr=1e-30"):
        optimizer.add_param_group({"params": [b], "lr": 1e-30, "max_iter": 1})
    assert len(optimizer.param_groups) == 1
    optimizer.add_param_group({"params": [b]})  # the same options: accepted
    assert len(optimizer.param_groups) == 2


@pytest.mark.parametrize("name", DLOPT)
def test_the_parameter_set_may_grow_after_steps(name):
    """Unfreezing layers: add_param_group after a step crashed LBFGS, BFGS and CG with shape
    errors inside the solver. The memory restarts for the new vector; both parts converge.
    (torch.optim.LBFGS refuses a second param group outright.)"""
    a = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    b = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    optimizer = _make(name, [a], max_iter=100)

    def loss():
        return ((a - 1) ** 2).sum() + ((a[:2] * b - 2) ** 2).sum() + (b**2).sum() * 1e-3

    optimizer.step(_closure(optimizer, loss))
    optimizer.add_param_group({"params": [b]})
    for _ in range(5):
        optimizer.step(_closure(optimizer, loss))
    grads = torch.autograd.grad(loss(), [a, b])
    assert max(float(g.abs().max()) for g in grads) <= 1e-4
    assert optimizer.status is Status.CONVERGED


@pytest.mark.parametrize("name", DLOPT)
def test_unfreezing_a_parameter_restarts_the_memory(name):
    a = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    b = nn.Parameter(torch.zeros(2, dtype=torch.float64), requires_grad=False)
    optimizer = _make(name, [a, b], max_iter=100)

    def loss():
        return ((a - 1) ** 2).sum() + ((b - 3) ** 2).sum()

    optimizer.step(_closure(optimizer, loss))
    b.requires_grad_(True)
    optimizer.step(_closure(optimizer, loss))
    torch.testing.assert_close(b.detach(), torch.full((2,), 3.0, dtype=torch.float64))


@pytest.mark.parametrize("name", list(OPTIMIZERS_UNDER_TEST))
def test_step_is_a_no_op_when_no_parameter_requires_grad(name):
    """PyTorch's test_step_is_noop_when_params_have_no_grad: step() raised ValueError."""
    params = [torch.randn(2, 3, dtype=torch.float64) for _ in range(2)]
    before = [p.clone() for p in params]
    optimizer = _make(name, params)
    loss = optimizer.step(lambda: torch.tensor([1.0], dtype=torch.float64))
    assert float(loss) == 1.0
    assert all(torch.equal(p, q) for p, q in zip(params, before, strict=True))


@pytest.mark.parametrize(("dtype", "scale"), [(torch.float16, 300.0), (torch.bfloat16, 3.0)])
@pytest.mark.parametrize("name", DLOPT)
def test_half_precision_parameters_are_optimized_in_float32(name, dtype, scale):
    """NewtonCG on float16 raised ZeroDivisionError (‖r‖² underflowed to 0); a steep bowl
    in float16 ended NONFINITE for every method (the trial steps overflowed). bfloat16 has 8
    bits of mantissa: on the steep bowl its f cannot resolve the line search's steps."""
    w = nn.Parameter(torch.zeros(3, dtype=dtype))
    optimizer = _make(name, [w], tol=1e-2 * scale / 3)
    optimizer.step(_closure(optimizer, lambda: (scale * (w - 0.5) ** 2).sum()))
    assert optimizer.status is Status.CONVERGED and w.dtype == dtype and w.grad.dtype == dtype
    torch.testing.assert_close(w.detach().float(), torch.full((3,), 0.5), atol=1e-2, rtol=0)


@pytest.mark.parametrize("method", ["cg", "cg-pr", "bfgs", "lbfgs", "newton-cg", "newton"])
def test_minimize_in_float16_does_not_overflow(method):
    result = minimize(
        lambda x: (300 * (x - 0.5) ** 2).sum(),
        torch.zeros(3, dtype=torch.float16),
        method=method,
        tol=1e-2,
    )
    assert result.success and result.x.dtype == torch.float16, result.message


def test_a_detached_or_non_floating_objective_is_refused():
    """A detached objective returned success=True at x0; an integer one was CONVERGED."""
    x0 = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="without a graph"):
        minimize(lambda x: ((x - 1) ** 2).sum().detach(), x0)
    with pytest.raises(TypeError, match="floating-point"):
        minimize(lambda x: torch.tensor(3), x0)
    w = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    optimizer = NewtonCG([w])
    with pytest.raises(ValueError, match="without a graph"):
        optimizer.step(lambda: ((w - 1) ** 2).sum().detach())
    optimizer = LBFGS([w])
    with pytest.raises(TypeError, match="floating-point"):
        optimizer.step(lambda: torch.tensor(3))


@pytest.mark.parametrize("max_ls", [0, -5])
def test_max_ls_must_be_positive(max_ls):
    with pytest.raises(ValueError, match="max_ls"):
        minimize(lambda x: (x**2).sum(), torch.ones(2), max_ls=max_ls)
    with pytest.raises(TypeError, match="max_ls"):
        minimize(lambda x: (x**2).sum(), torch.ones(2), max_ls=2.5)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda p: LBFGS(p, lr=0), ValueError, "lr"),
        (lambda p: LBFGS(p, max_iter=0), ValueError, "max_iter"),
        (lambda p: LBFGS(p, tol=-1), ValueError, "tol"),
        (lambda p: LBFGS(p, line_search="wolfe"), ValueError, "line_search"),
        (lambda p: LBFGS(p, history_size=0), ValueError, "history_size"),
        (lambda p: BFGS(p, memory_budget=-1), ValueError, "memory_budget"),
        (lambda p: Newton(p, memory_budget=0), ValueError, "memory_budget"),
        (lambda p: NonlinearCG(p, beta="dy"), ValueError, "beta"),
        (lambda p: NewtonCG(p, max_cg=-1), ValueError, "max_cg"),
        (lambda p: NewtonCG(p, max_cg=1.5), TypeError, "max_cg"),
    ],
)
def test_every_option_is_validated(make, error, match):
    with pytest.raises(error, match=match):
        make([nn.Parameter(torch.zeros(2, dtype=torch.float64))])


def test_minimize_options_are_validated():
    bowl, x0 = (lambda x: (x**2).sum()), torch.ones(2)
    with pytest.raises(ValueError, match="memory_budget"):
        minimize(bowl, x0, method="bfgs", memory_budget=0)
    with pytest.raises(TypeError, match="callback"):
        minimize(bowl, x0, callback=3)
