"""What a minimization returns: scipy's field names and one honest status."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from torch import Tensor


class Status(enum.Enum):
    """Why a run ended; ``status.value`` is scipy-like (0 = success), ``message`` says why."""

    CONVERGED = (0, "Converged: the gradient's inf-norm is at most tol.")
    MAX_ITER = (1, "Stopped: max_iter iterations reached.")
    LINE_SEARCH_FAILED = (
        2,
        "Stopped: the line search found no acceptable step; x is the last accepted iterate.",
    )
    NONFINITE = (3, "Stopped: NaN or inf encountered; x is the last finite iterate.")
    CALLBACK = (4, "Stopped by the callback.")
    DIVERGED = (5, "Stopped: f grew 1e3× above its best; x is the best iterate.")

    @property
    def code(self) -> int:
        return self.value[0]

    @property
    def message(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class OptimizeResult:
    """Result of :func:`minimize` (scipy's names): `x` has the shape, dtype and device of x0.

    `nfev` counts objective evaluations (each gives f and ∇f, so ``njev == nfev``); `nhev`
    counts Hessian-vector products, or full Hessians for ``method="newton"``.
    """

    x: Tensor
    fun: float
    jac: Tensor
    nit: int
    nfev: int
    njev: int
    nhev: int
    status: Status

    @property
    def success(self) -> bool:
        return self.status is Status.CONVERGED

    @property
    def message(self) -> str:
        return self.status.message

    @property
    def grad_norm(self) -> float:
        """‖∇f(x)‖∞, the quantity `tol` bounds."""
        return float(self.jac.abs().max()) if self.jac.numel() else 0.0
