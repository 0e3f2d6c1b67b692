"""How a training loop drives an optimizer: the typed contract between an optimizer and
:class:`dlopt.train.Trainer` (and :mod:`dlopt.optim.distributed`), read once per run.

``torch.optim`` optimizers take ``step()`` after ``backward()``; ``torch.optim.LBFGS`` takes
``step(closure)``. dlopt's second-order methods (:mod:`dlopt.optim.optimizers`) declare theirs
as the class attribute ``step_policy``; another optimizer class may do the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlopt.errors import InvalidParameterError


@dataclass(frozen=True)
class StepPolicy:
    """Args:
    closure: ``step(closure)``, the closure evaluated as often as the method needs.
    closure_backward: The closure calls ``backward()`` (False: the method differentiates
        the returned loss itself, as Newton and NewtonCG do for Hessian-vector products).
    guards_trials: A non-finite loss at a trial point is the method's to handle (its line
        search shrinks the step); only the point where it stops is the NaN guard's.
    """

    closure: bool = False
    closure_backward: bool = True
    guards_trials: bool = False


FIRST_ORDER = StepPolicy()
TORCH_LBFGS = StepPolicy(closure=True)


def step_policy(optimizer: torch.optim.Optimizer) -> StepPolicy:
    """The optimizer's declared policy; torch.optim.LBFGS's closure; else a first-order step."""
    declared = getattr(type(optimizer), "step_policy", None)
    if isinstance(declared, StepPolicy):
        return declared
    if declared is not None:
        raise InvalidParameterError(
            f"{type(optimizer).__name__}.step_policy must be a dlopt.optim.StepPolicy; "
            f"got {declared!r}."
        )
    return TORCH_LBFGS if isinstance(optimizer, torch.optim.LBFGS) else FIRST_ORDER
