"""Optimizers: Newton, Newton-CG, nonlinear CG, BFGS and L-BFGS on one strong-Wolfe line search,
as ``minimize(fun, x0, method=...)`` and as ``torch.optim.Optimizer`` classes (SPEC I)."""

from dlopt.optim.distributed import DistributedClosure, distributed_closure
from dlopt.optim.line_search import backtracking, strong_wolfe
from dlopt.optim.minimize import METHODS, minimize
from dlopt.optim.optimizers import BFGS, LBFGS, Newton, NewtonCG, NonlinearCG
from dlopt.optim.result import OptimizeResult, Status
from dlopt.optim.step_policy import StepPolicy, step_policy

__all__ = [
    "BFGS",
    "LBFGS",
    "METHODS",
    "DistributedClosure",
    "Newton",
    "NewtonCG",
    "NonlinearCG",
    "OptimizeResult",
    "Status",
    "StepPolicy",
    "backtracking",
    "distributed_closure",
    "minimize",
    "step_policy",
    "strong_wolfe",
]
