"""The problems of `dlopt bench optim`: extended Rosenbrock, logistic regression and an MLP
on digits, as flat-vector torch objectives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dlopt.data import load_bundled, split_dataset

GTOL = 1e-5
ROSENBROCK = (2, 100, 1000, 10000)
PAIRS = [("cg", "CG"), ("bfgs", "BFGS"), ("lbfgs", "L-BFGS-B"), ("newton-cg", "Newton-CG")]


def pairs_for(n: int) -> list[tuple[str, str | None]]:
    """The (dlopt method, SciPy counterpart) pairs run on a problem of n unknowns; None where
    SciPy's is skipped: its BFGS is O(n³) per iteration, minutes at n = 1000. dlopt's dense
    BFGS stops at n = 2000 (n² numbers; L-BFGS is the method past that)."""
    return [
        (ours, None if theirs == "BFGS" and n >= 1000 else theirs)
        for ours, theirs in PAIRS
        if not (ours == "bfgs" and n > 2000)
    ]


@dataclass(frozen=True)
class Problem:
    name: str
    fun: Callable[[Tensor], Tensor]
    x0: Tensor


def _rosenbrock(x: Tensor) -> Tensor:
    a, b = x[0::2], x[1::2]
    return (100 * (b - a**2) ** 2 + (1 - a) ** 2).sum()


def rosenbrock_problem(n: int, device: torch.device | str = "cpu") -> Problem:
    """Extended Rosenbrock from the standard start (−1.2, 1, −1.2, 1, …)."""
    x0 = torch.full((n,), -1.2, dtype=torch.float64, device=device)
    x0[1::2] = 1.0
    return Problem(f"rosenbrock-{n}", _rosenbrock, x0)


def problems(
    device: torch.device | str = "cpu", rosenbrock: tuple[int, ...] = ROSENBROCK
) -> list[Problem]:
    out = [rosenbrock_problem(n, device) for n in rosenbrock]
    train = split_dataset(load_bundled("digits"), seed=0).train
    X, y = train.X.double().to(device), train.y.to(device)

    def logistic(w: Tensor) -> Tensor:
        W, b = w[:640].view(64, 10), w[640:]
        return F.cross_entropy(X @ W + b, y) + 1e-3 * (W**2).sum()

    out.append(
        Problem("logreg-digits", logistic, torch.zeros(650, dtype=torch.float64, device=device))
    )
    mlp, size = flat_mlp(X, y, 32)
    generator = torch.Generator().manual_seed(0)
    w0 = torch.randn(size, generator=generator, dtype=torch.float64) * 0.1
    out.append(Problem("mlp-64-32-10", mlp, w0.to(device)))
    return out


def flat_mlp(
    X: Tensor,
    y: Tensor,
    hidden: int,
    activation: Callable[[Tensor], Tensor] = torch.tanh,
    weight_decay: float = 0.0,
) -> tuple[Callable[[Tensor], Tensor], int]:
    """(w ↦ loss, len(w)): cross-entropy (+ weight_decay·‖w‖²) of a one-hidden-layer MLP,
    X.shape[1] → hidden → classes, as a function of its parameters in one flat vector
    w = [W₁, b₁, W₂, b₂] — the form minimize() and SciPy take."""
    classes = int(y.max()) + 1
    shapes = [(X.shape[1], hidden), (hidden,), (hidden, classes), (classes,)]
    sizes = [int(np.prod(s)) for s in shapes]

    def fun(w: Tensor) -> Tensor:
        W1, b1, W2, b2 = (p.view(s) for p, s in zip(w.split(sizes), shapes, strict=True))
        loss = F.cross_entropy(activation(X @ W1 + b1) @ W2 + b2, y)
        return loss + weight_decay * (w**2).sum() if weight_decay else loss

    return fun, sum(sizes)
