"""Weight penalties for networks (SPEC C1–C3): J_reg(Θ) = J(Θ) + λ·R(Θ).

- L2, R = ‖W‖²: the gradient gains 2λW, so plain SGD with step ρ becomes
  W ← (1 − 2ρλ)W − ρ∇J ("weight decay"). ``decoupled=True`` applies the shrink W ← (1 − 2ρλ)W
  just before the optimizer's own step instead of through the gradient (AdamW's order and form);
  with SGD both forms give the same update exactly.
- L1, R = ‖W‖₁: the subgradient adds λ·sign(W), which almost never lands exactly on 0;
  ``proximal=True`` instead soft-thresholds after each step, W ← sign(W)·max(|W| − ρλ, 0), which
  yields exact zeros (proximal gradient; exact for SGD, a common heuristic for adaptive
  optimizers where ρ is the group's lr).
- ElasticNet, R = Σ β·W² + |W|: the L2 part in the gradient, the L1 part as above.

By default a penalty applies to weights (parameters with ≥ 2 dimensions: Linear and Conv
kernels) and leaves biases, BatchNorm's γ/β and PReLU's α alone; ``include="all"`` or a
predicate ``(name, parameter) -> bool`` chooses otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from dlopt._validation import check_finite_number
from dlopt.errors import InvalidParameterError
from dlopt.regularize.linear import soft_threshold

Selector = Literal["weights", "all"] | Callable[[str, nn.Parameter], bool]


def select_parameters(model: nn.Module, include: Selector = "weights") -> list[nn.Parameter]:
    """The parameters a penalty applies to (see the module docstring)."""
    if include == "all":
        return [p for p in model.parameters() if p.requires_grad]
    if include == "weights":
        return [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    if callable(include):
        return [p for name, p in model.named_parameters() if p.requires_grad and include(name, p)]
    raise InvalidParameterError(
        f"penalty include=... must be 'weights', 'all' or a predicate; got {include!r}."
    )


class Penalty:
    """Base class: `term` joins the loss before backward; `after_step` acts on the weights."""

    def __init__(self, lam: float, include: Selector = "weights") -> None:
        self.lam = check_finite_number("lam", lam, caller=type(self).__name__)
        if self.lam < 0:
            raise InvalidParameterError(
                f"{type(self).__name__}(lam=...) must be >= 0; got {lam!r}."
            )
        self.include = include
        self._params: list[nn.Parameter] = []
        self._groups: list[dict[str, Any] | None] = []

    def bind(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Choose the parameters (and their learning rates, for the step forms)."""
        self._params = select_parameters(model, self.include)
        groups = {
            id(p): g for g in (optimizer.param_groups if optimizer else []) for p in g["params"]
        }
        self._groups = [groups.get(id(p)) for p in self._params]

    def _rates(self) -> list[float]:
        """Each bound parameter's current learning rate ρ (0 without an optimizer)."""
        return [float(g["lr"]) if g else 0.0 for g in self._groups]

    @property
    def parameters(self) -> list[nn.Parameter]:
        return self._params

    def value(self) -> Tensor:
        """λ·R(Θ) over the bound parameters (what the objective adds)."""
        raise NotImplementedError

    def term(self) -> Tensor | None:
        """The part added to the loss before backward (None when applied as a step)."""
        return self.value()

    @torch.no_grad()
    def before_step(self) -> None:
        """Act on the weights just before the optimizer step (decoupled decay)."""

    @torch.no_grad()
    def after_step(self) -> None:
        """Act on the weights after the optimizer step (proximal steps)."""


def _sum_sq(params: Iterable[Tensor]) -> Tensor:
    return torch.stack([p.pow(2).sum() for p in params]).sum()


def _sum_abs(params: Iterable[Tensor]) -> Tensor:
    return torch.stack([p.abs().sum() for p in params]).sum()


class L2(Penalty):
    """λ‖W‖²: gradient 2λW (coupled), or W ← (1 − 2ρλ)W after the step (``decoupled``)."""

    def __init__(
        self, lam: float, *, decoupled: bool = False, include: Selector = "weights"
    ) -> None:
        super().__init__(lam, include)
        self.decoupled = decoupled

    def value(self) -> Tensor:
        return self.lam * _sum_sq(self._params)

    def term(self) -> Tensor | None:
        return None if self.decoupled else self.value()

    @torch.no_grad()
    def before_step(self) -> None:
        if self.decoupled:
            for p, lr in zip(self._params, self._rates(), strict=True):
                p.mul_(1 - 2 * lr * self.lam)


class L1(Penalty):
    """λ‖W‖₁: subgradient λ·sign(W), or soft-thresholding after the step (``proximal``)."""

    def __init__(
        self, lam: float, *, proximal: bool = False, include: Selector = "weights"
    ) -> None:
        super().__init__(lam, include)
        self.proximal = proximal

    def value(self) -> Tensor:
        return self.lam * _sum_abs(self._params)

    def term(self) -> Tensor | None:
        return None if self.proximal else self.value()

    @torch.no_grad()
    def after_step(self) -> None:
        if self.proximal:
            for p, lr in zip(self._params, self._rates(), strict=True):
                p.copy_(soft_threshold(p, lr * self.lam))


class ElasticNet(Penalty):
    """λ(β‖W‖² + ‖W‖₁); with ``proximal`` the ‖·‖₁ part is a soft-threshold step."""

    def __init__(
        self, lam: float, beta: float, *, proximal: bool = False, include: Selector = "weights"
    ) -> None:
        super().__init__(lam, include)
        self.beta = check_finite_number("beta", beta, caller="ElasticNet")
        if self.beta < 0:
            raise InvalidParameterError(f"ElasticNet(beta=...) must be >= 0; got {beta!r}.")
        self.proximal = proximal

    def value(self) -> Tensor:
        return self.lam * (self.beta * _sum_sq(self._params) + _sum_abs(self._params))

    def term(self) -> Tensor | None:
        if self.proximal:
            return self.lam * self.beta * _sum_sq(self._params)
        return self.value()

    @torch.no_grad()
    def after_step(self) -> None:
        if self.proximal:
            for p, lr in zip(self._params, self._rates(), strict=True):
                p.copy_(soft_threshold(p, lr * self.lam))


def sparsity(params: Iterable[Tensor]) -> float:
    """Share of exactly-zero entries."""
    params = list(params)
    total = sum(p.numel() for p in params)
    return float(sum(int((p == 0).sum()) for p in params)) / max(total, 1)
