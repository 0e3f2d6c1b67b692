"""The torch.optim classes: same solver as minimize(), state_dict round trips, param groups."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from dlopt.optim import BFGS, LBFGS, Newton, NewtonCG, NonlinearCG, Status, minimize
from dlopt.train import Trainer

from .problems import device_path, extended_rosenbrock, rosenbrock_x0

CLASSES = {"lbfgs": LBFGS, "bfgs": BFGS, "cg": NonlinearCG, "newton-cg": NewtonCG, "newton": Newton}


def _closure(params, optimizer):
    def closure():
        optimizer.zero_grad()
        loss = extended_rosenbrock(torch.cat([p.reshape(-1) for p in params]))
        if optimizer.step_policy.closure_backward:
            loss.backward()
        return loss

    return closure


def _params(groups=1):
    x0 = torch.tensor(rosenbrock_x0(10))
    pieces = x0.split([4, 6]) if groups == 2 else (x0,)
    return [nn.Parameter(p.clone()) for p in pieces]


@pytest.mark.parametrize("name", list(CLASSES))
def test_a_step_runs_the_same_solver_as_minimize(name):
    params = _params()
    optimizer = CLASSES[name](params, max_iter=500, tol=1e-5)
    loss = optimizer.step(_closure(params, optimizer))
    expected = minimize(extended_rosenbrock, torch.tensor(rosenbrock_x0(10)), method=name)
    assert optimizer.status is Status.CONVERGED
    torch.testing.assert_close(params[0].detach(), expected.x, rtol=0, atol=1e-12)
    assert float(loss) == pytest.approx(expected.fun)  # the loss at the *final* point
    state = optimizer.state_dict()["state"][0]
    assert state["nfev"] == expected.nfev and state["grad_norm"] <= 1e-5


@pytest.mark.parametrize("path", ["host", "device"])
@pytest.mark.parametrize("name", ["lbfgs", "bfgs", "cg", "newton-cg"])
def test_state_dict_round_trip_continues_exactly(name, path, monkeypatch):
    """Interrupted after 2 steps of 7 iterations (L-BFGS's ring of 10 pairs not aligned),
    reloaded (weights_only) into a fresh optimizer, the run ends where the uninterrupted one
    does — on the CPU's numpy path and on the path a GPU takes."""
    if path == "device":
        device_path(monkeypatch)

    def run(split):
        params = _params()
        optimizer = CLASSES[name](params, max_iter=7)
        for k in range(6):
            if split and k == 2:
                buffer = io.BytesIO()
                torch.save(
                    {
                        "params": [p.detach().clone() for p in params],
                        "optimizer": optimizer.state_dict(),
                    },
                    buffer,
                )
                buffer.seek(0)
                saved = torch.load(buffer, weights_only=True)
                params = [nn.Parameter(p) for p in saved["params"]]
                optimizer = CLASSES[name](params, max_iter=7)
                optimizer.load_state_dict(saved["optimizer"])
            optimizer.step(_closure(params, optimizer))
        return params[0].detach()

    assert torch.equal(run(False), run(True))


def test_several_param_groups_act_as_one_vector():
    single, double = _params(1), _params(2)
    a = LBFGS(single, max_iter=200)
    b = LBFGS([{"params": [double[0]]}, {"params": [double[1]]}], max_iter=200)
    a.step(_closure(single, a))
    b.step(_closure(double, b))
    torch.testing.assert_close(
        torch.cat([p.detach() for p in double]), single[0].detach(), rtol=0, atol=1e-12
    )
    with pytest.raises(ValueError, match="share its options"):
        LBFGS([{"params": [double[0]], "lr": 1.0}, {"params": [double[1]], "lr": 0.5}])


def test_arguments_are_checked():
    params = _params()
    with pytest.raises(TypeError, match="history_size"):
        LBFGS(params, history_size=2.5)
    with pytest.raises(ValueError, match="beta"):
        NonlinearCG(params, beta="dy")
    with pytest.raises(ValueError, match=r"LBFGS\(tol=\.\.\.\) must be a finite number ≥ 0"):
        LBFGS(params, tol=-1e-3)  # would never converge: it ran to max_iter
    with pytest.raises(ValueError, match="L-BFGS"):
        BFGS([nn.Parameter(torch.zeros(20_000))])
    with pytest.raises(ValueError, match="closure"):
        LBFGS(params).step(None)  # type: ignore[arg-type]


def test_parameters_of_mixed_dtypes_run_as_one_vector_of_the_wider_dtype():
    """As torch.optim.LBFGS does: the flat vector takes the promoted dtype, and each
    parameter (and its .grad) keeps its own."""
    a = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    b = nn.Parameter(torch.zeros(2, dtype=torch.float32))
    optimizer = LBFGS([a, b])

    def closure():
        optimizer.zero_grad()
        loss = ((a - 1) ** 2).sum() + ((b - 2) ** 2).sum()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert optimizer.status is Status.CONVERGED and float(loss) < 1e-12
    assert a.grad.dtype == torch.float64 and b.grad.dtype == torch.float32
    torch.testing.assert_close(b.detach(), torch.full((2,), 2.0))


def test_unusable_parameters_and_closures_are_named():
    with pytest.raises(TypeError, match=r"real floating-point.*complex64"):
        LBFGS([nn.Parameter(torch.zeros(3, dtype=torch.complex64))])
    # nothing requires grad: a no-op returning the closure's loss, as in torch.optim
    assert float(LBFGS([torch.zeros(3)]).step(lambda: torch.ones(()))) == 1.0
    params = _params()
    optimizer = LBFGS(params)

    def forgets_backward():  # torch.optim.LBFGS reads zero gradients and stops at once
        optimizer.zero_grad()
        return extended_rosenbrock(params[0])

    with pytest.raises(ValueError, match=r"must call loss\.backward\(\)"):
        optimizer.step(forgets_backward)

    def returns(value):
        def closure():
            optimizer.zero_grad()
            extended_rosenbrock(params[0]).backward()
            return value

        return closure

    with pytest.raises(TypeError, match=r"must return the loss.*got NoneType"):
        optimizer.step(returns(None))
    with pytest.raises(TypeError, match=r"must return the loss.*shape \(3,\)"):
        optimizer.step(returns(torch.ones(3)))

    def returns_a_number():  # a number is a loss, as in torch.optim
        optimizer.zero_grad()
        loss = extended_rosenbrock(params[0])
        loss.backward()
        return loss.item()

    before = extended_rosenbrock(params[0]).item()
    assert isinstance(optimizer.step(returns_a_number), torch.Tensor)
    assert extended_rosenbrock(params[0]).item() < before


def test_newton_needs_a_closure_without_backward():
    params = _params()
    optimizer = NewtonCG(params)

    def closure():
        loss = extended_rosenbrock(params[0])
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="without calling backward"):
        optimizer.step(closure)


@pytest.mark.parametrize("name", list(CLASSES))
def test_the_trainer_drives_every_class_full_batch(name):
    from dlopt.data import load_bundled, split_dataset
    from dlopt.nn import mlp

    splits = split_dataset(load_bundled("wine"), seed=0)
    torch.manual_seed(0)
    model = mlp(13, 3, (8,), activation="tanh").double()
    optimizer = CLASSES[name](model.parameters(), max_iter=10)
    trainer = Trainer(model, optimizer, max_epochs=4, batch_size=1000)
    state = trainer.fit(splits.train, splits.val)
    assert state.history[-1]["loss"] < state.history[0]["loss"] or state.history[0]["loss"] < 1e-6
    assert trainer.evaluate(splits.test)["accuracy"] > 0.85


def test_mini_batch_lbfgs_keeps_its_memory_across_steps():
    from dlopt.data import load_bundled, split_dataset
    from dlopt.nn import mlp

    splits = split_dataset(load_bundled("digits"), seed=0)
    torch.manual_seed(0)
    model = mlp(64, 10, (32,), activation="tanh")
    optimizer = LBFGS(model.parameters(), max_iter=3, tol=1e-5)
    trainer = Trainer(model, optimizer, max_epochs=2, batch_size=256)
    trainer.fit(splits.train, splits.val)
    assert optimizer.state_dict()["state"][0]["memory"]["nit"] > 6
    assert trainer.evaluate(splits.test)["accuracy"] > 0.85


@pytest.mark.parametrize("reload", ["live", "exact", "refactored"])
@pytest.mark.parametrize("path", ["host", "device"])
@pytest.mark.parametrize("name", ["lbfgs", "bfgs", "cg", "newton-cg"])
def test_short_steps_continue_one_run(name, path, reload, monkeypatch):
    """Seven iterations per step() make the iterates of one minimize() run, up to rounding:
    the method object carried from step to step ("live"), or rebuilt from the state dict at
    every step (L-BFGS's ring of 10 pairs reloaded at every offset), with R⁻¹ as saved
    ("exact") or, as from a state dict that lacks it, factored afresh ("refactored"; x then
    differs by ~1e-8 at the end on the host path). A reload in the wrong pair order costs
    L-BFGS four more iterations here."""
    from dlopt.optim import lbfgs

    if path == "device":
        device_path(monkeypatch)
    loads = [0]
    load = lbfgs.LBFGS.load_state_dict

    def counted(self, state):
        loads[0] += 1
        return load(self, state)

    monkeypatch.setattr(lbfgs.LBFGS, "load_state_dict", counted)
    params = _params()
    optimizer = CLASSES[name](params, max_iter=7, tol=1e-5)
    closure = _closure(params, optimizer)
    steps = 0
    while steps < 40:
        optimizer.step(closure)
        steps += 1
        if optimizer.status is Status.CONVERGED:
            break
        if reload != "live":
            saved = optimizer.state_dict()
            if reload == "refactored":
                saved["state"][0]["method"].pop("R_inv", None)
            optimizer.load_state_dict(saved)  # new state objects: the next step rebuilds
    expected = minimize(extended_rosenbrock, torch.tensor(rosenbrock_x0(10)), method=name)
    assert optimizer.status is Status.CONVERGED
    assert optimizer.state_dict()["state"][0]["memory"]["nit"] == expected.nit
    torch.testing.assert_close(params[0].detach(), expected.x, rtol=0, atol=1e-7)
    if name == "lbfgs":
        assert loads[0] == (0 if reload == "live" else steps - 1), (loads[0], steps)


def test_a_changed_history_size_is_named():
    """Options changed between steps rebuild the method from the state dict; a state of 10
    pairs cannot become a history of 5, and the error says so."""
    params = _params()
    optimizer = CLASSES["lbfgs"](params, max_iter=3)
    closure = _closure(params, optimizer)
    optimizer.step(closure)
    optimizer.param_groups[0]["lr"] = 0.5  # a harmless change: continues
    optimizer.step(closure)
    optimizer.param_groups[0]["history_size"] = 5
    with pytest.raises(ValueError, match="holds 10 pairs, but history_size is 5"):
        optimizer.step(closure)


@pytest.mark.parametrize("name", ["NewtonCG", "Newton"])
def test_curvature_of_an_earlier_trial_is_rebuilt_where_it_was_taken(name):
    """Trial steps overwrite the parameters in place; the curvature of an earlier evaluation
    (an earlier trial the line search accepted) is rebuilt at its own point — one more
    evaluation — instead of failing on a stale graph (nn.Linear saves its weight)."""
    from dlopt.optim.objective import ClosureObjective

    torch.manual_seed(0)
    layer = nn.Linear(3, 2).double()
    X, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    params = list(layer.parameters())

    def closure():
        return torch.tanh(layer(X)).sub(y).pow(2).sum()

    objective = ClosureObjective(params, closure, backward=False)
    x1 = objective.flat_params().clone()
    first = objective.evaluate(x1, create_graph=True)
    objective.evaluate(x1 + 0.3, create_graph=True)  # a later trial moves the parameters
    assert first.hvp is not None and first.hessian is not None
    v = torch.randn(x1.numel(), dtype=torch.float64)

    def flat_loss(x):
        W, b = x[:6].view(2, 3), x[6:]
        return torch.tanh(X @ W.T + b).sub(y).pow(2).sum()

    _, expected = torch.autograd.functional.hvp(flat_loss, x1, v)
    torch.testing.assert_close(first.hvp(v), expected)
    assert objective.nfev == 3  # two evaluations and one rebuild
    H = first.hessian() if name == "Newton" else None
    if H is not None:
        torch.testing.assert_close(H @ v, expected)
        assert objective.nfev == 3  # the rebuilt graph serves again
