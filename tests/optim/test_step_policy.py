"""The typed optimizer contract the Trainer reads once (dlopt.optim.step_policy)."""

from typing import ClassVar

import pytest
import torch

from dlopt.optim import LBFGS, Newton, NewtonCG, StepPolicy, step_policy
from dlopt.train import Trainer


def test_policies_of_torch_and_dlopt_optimizers():
    w = [torch.nn.Parameter(torch.zeros(2))]
    assert step_policy(torch.optim.SGD(w, lr=0.1)) == StepPolicy()
    assert step_policy(torch.optim.LBFGS(w)) == StepPolicy(closure=True)
    assert step_policy(LBFGS(w)) == StepPolicy(closure=True, guards_trials=True)
    for cls in (Newton, NewtonCG):
        assert step_policy(cls(w)) == StepPolicy(
            closure=True, closure_backward=False, guards_trials=True
        )


class _CountingClosureSGD(torch.optim.SGD):
    """A user's optimizer that declares a closure step: the Trainer must call step(closure)."""

    step_policy = StepPolicy(closure=True)
    calls = 0

    def step(self, closure=None):
        assert closure is not None, "the Trainer did not pass a closure"
        type(self).calls += 1
        with torch.enable_grad():
            loss = closure()
        super().step()
        return loss


def test_trainer_follows_a_declared_policy():
    torch.manual_seed(0)
    X, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    model = torch.nn.Linear(3, 2)
    opt = _CountingClosureSGD(model.parameters(), lr=0.1)
    Trainer(model, opt, max_epochs=1, batch_size=8, progress=False).fit((X, y))
    assert _CountingClosureSGD.calls == 4  # one closure step per batch


def test_a_policy_of_the_wrong_type_is_refused():
    class Bad(torch.optim.SGD):
        step_policy: ClassVar = {"closure": True}

    with pytest.raises(TypeError, match=r"must be a dlopt\.optim\.StepPolicy"):
        step_policy(Bad([torch.nn.Parameter(torch.zeros(1))], lr=0.1))
