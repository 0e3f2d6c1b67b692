"""Standard test problems, each in torch (for dlopt) and numpy (for scipy's reference runs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Problem:
    name: str
    torch_f: Callable[[torch.Tensor], torch.Tensor]
    x0: np.ndarray

    def f(self, x: np.ndarray) -> float:
        return float(self.torch_f(torch.tensor(x, dtype=torch.float64)))

    def grad(self, x: np.ndarray) -> np.ndarray:
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(self.torch_f(t), t)
        return g.numpy()

    def hessp(self, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(self.torch_f(t), t, create_graph=True)
        (hp,) = torch.autograd.grad(g, t, torch.tensor(p, dtype=torch.float64))
        return hp.numpy()


def extended_rosenbrock(x: torch.Tensor) -> torch.Tensor:
    a, b = x[0::2], x[1::2]
    return (100 * (b - a**2) ** 2 + (1 - a) ** 2).sum()


def rosenbrock_x0(n: int) -> np.ndarray:
    x0 = np.full(n, -1.2)
    x0[1::2] = 1.0
    return x0


def _logistic() -> Problem:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    X = torch.tensor((data.data - data.data.mean(0)) / data.data.std(0))
    y = torch.tensor(data.target, dtype=torch.float64)

    def f(w: torch.Tensor) -> torch.Tensor:
        z = X @ w[:-1] + w[-1]
        return (
            torch.nn.functional.binary_cross_entropy_with_logits(z, y) + 1e-2 * (w[:-1] ** 2).sum()
        )

    return Problem("logistic", f, np.zeros(X.shape[1] + 1))


def _quadratic() -> Problem:
    rng = np.random.default_rng(0)
    Q = rng.normal(size=(12, 12))
    A = torch.tensor(Q @ Q.T + 12 * np.eye(12))
    b = torch.tensor(rng.normal(size=12))
    return Problem("quadratic", lambda x: 0.5 * x @ A @ x - b @ x, np.zeros(12))


def himmelblau(x: torch.Tensor) -> torch.Tensor:
    return (x[0] ** 2 + x[1] - 11) ** 2 + (x[0] + x[1] ** 2 - 7) ** 2


def beale(x: torch.Tensor) -> torch.Tensor:  # Moré, Garbow & Hillstrom #5: minimum at (3, ½)
    return (
        (1.5 - x[0] + x[0] * x[1]) ** 2
        + (2.25 - x[0] + x[0] * x[1] ** 2) ** 2
        + (2.625 - x[0] + x[0] * x[1] ** 3) ** 2
    )


def helical_valley(x: torch.Tensor) -> torch.Tensor:  # MGH #7: minimum at (1, 0, 0)
    theta = torch.atan2(x[1], x[0]) / (2 * torch.pi)
    radius = torch.sqrt(x[0] ** 2 + x[1] ** 2)
    return 100 * (x[2] - 10 * theta) ** 2 + 100 * (radius - 1) ** 2 + x[2] ** 2


PROBLEMS = [
    Problem("rosenbrock-2", extended_rosenbrock, rosenbrock_x0(2)),
    Problem("rosenbrock-10", extended_rosenbrock, rosenbrock_x0(10)),
    _logistic(),
    _quadratic(),
    Problem("himmelblau", himmelblau, np.array([0.5, 0.5])),
    Problem("beale", beale, np.array([1.0, 1.0])),
    Problem("helical-valley", helical_valley, np.array([-1.0, 0.0, 0.0])),
]


def device_path(monkeypatch) -> None:
    """Run the code a GPU runs, on the CPU: there the solver and L-BFGS otherwise let numpy
    work on the tensors' memory in place (their host path)."""
    from dlopt.optim import placement

    monkeypatch.setattr(placement, "on_host", lambda tensor: False)
