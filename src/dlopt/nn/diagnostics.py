"""Activation diagnostics the chapter argues with (SPEC A4).

For each activation layer: the share of *saturated* units (|τ'(z)| < 1e-3 — the sigmoid's
flat tails), the mean output (zero-centredness: sigmoid outputs are all positive), and for each
weight layer the gradient norm, which shows the vanishing gradients of deep sigmoid nets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from dlopt.nn.activations import ACTIVATIONS, Maxout, MaxoutConv, Step

SATURATION = 1e-3
_ACTIVATION_TYPES = tuple({type(factory()) for factory in ACTIVATIONS.values()} - {nn.Identity})


@dataclass
class Snapshot:
    """One measurement: per activation layer and per weight layer, in network order."""

    saturation: list[float] = field(default_factory=list)
    output_mean: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    loss: float = float("nan")


def _derivative(module: nn.Module, z: Tensor) -> Tensor:
    """τ'(z) element-wise, by autograd (exact for every element-wise activation)."""
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(module(z).sum(), z)
    return grad


def measure(model: nn.Module, X: Tensor, y: Tensor, loss_fn: Any) -> Snapshot:
    """Forward and backward once on (X, y) in train mode; parameters are not changed."""
    activations = [
        m
        for m in model.modules()
        if isinstance(m, _ACTIVATION_TYPES) and not isinstance(m, Maxout | MaxoutConv)
    ]
    weights = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]
    captured: dict[int, tuple[Tensor, Tensor]] = {}

    def hook(module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
        captured[id(module)] = (args[0].detach(), output.detach())

    handles = [m.register_forward_hook(hook) for m in activations]
    saved_grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    try:
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model(X), y)
        loss.backward()
        snapshot = Snapshot(loss=float(loss.detach()))
        for m in activations:
            if id(m) not in captured:
                continue
            z, out = captured[id(m)]
            slope = torch.zeros_like(z) if isinstance(m, Step) else _derivative(m, z)
            snapshot.saturation.append(float((slope.abs() < SATURATION).double().mean()))
            snapshot.output_mean.append(float(out.double().mean()))
        for m in weights:
            grad = m.weight.grad
            snapshot.grad_norm.append(0.0 if grad is None else float(grad.norm()))
    finally:
        for handle in handles:
            handle.remove()
        for p, g in zip(model.parameters(), saved_grads, strict=True):
            p.grad = g
    return snapshot


def time_per_call(
    module: nn.Module, shape: tuple[int, ...] = (256, 512), repeats: int = 200
) -> float:
    """Median seconds for forward + backward of `module` on a random input."""
    x = torch.randn(shape, requires_grad=True)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        module(x).sum().backward()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
