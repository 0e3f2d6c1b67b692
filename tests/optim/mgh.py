"""Moré, Garbow & Hillstrom (1981) "Testing unconstrained optimization software" (ACM TOMS 7),
as sums of squares f(x) = Σ rᵢ(x)², with the paper's standard starting points and, where the
paper gives it, the minimum value f*. Several sizes where the problem allows one. The
numbers (data, starts, f*) are the paper's; ``MGH`` lists 40 problem instances.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class MGHProblem:
    name: str
    residuals: Callable[[Tensor], Tensor]
    x0: tuple[float, ...]
    f_min: float | None = None  # the paper's minimum value, where it gives one

    @property
    def n(self) -> int:
        return len(self.x0)

    def f(self, x: Tensor) -> Tensor:
        r = self.residuals(x)
        return r @ r

    def start(self) -> Tensor:
        return torch.tensor(self.x0, dtype=torch.float64)


def _t(values: list[float]) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


def rosenbrock(x: Tensor) -> Tensor:  # 1, and 21 (extended)
    a, b = x[0::2], x[1::2]
    return torch.cat([10 * (b - a**2), 1 - a])


def freudenstein_roth(x: Tensor) -> Tensor:  # 2
    return torch.stack(
        [
            -13 + x[0] + ((5 - x[1]) * x[1] - 2) * x[1],
            -29 + x[0] + ((x[1] + 1) * x[1] - 14) * x[1],
        ]
    )


def powell_badly_scaled(x: Tensor) -> Tensor:  # 3
    return torch.stack([1e4 * x[0] * x[1] - 1, torch.exp(-x[0]) + torch.exp(-x[1]) - 1.0001])


def brown_badly_scaled(x: Tensor) -> Tensor:  # 4
    return torch.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2])


_BEALE_Y = _t([1.5, 2.25, 2.625])


def beale(x: Tensor) -> Tensor:  # 5
    i = torch.arange(1, 4, dtype=x.dtype)
    return _BEALE_Y - x[0] * (1 - x[1] ** i)


def jennrich_sampson(x: Tensor) -> Tensor:  # 6, m = 10
    i = torch.arange(1, 11, dtype=x.dtype)
    return 2 + 2 * i - (torch.exp(i * x[0]) + torch.exp(i * x[1]))


def helical_valley(x: Tensor) -> Tensor:  # 7
    theta = torch.atan2(x[1], x[0]) / (2 * math.pi)
    return torch.stack(
        [10 * (x[2] - 10 * theta), 10 * (torch.sqrt(x[0] ** 2 + x[1] ** 2) - 1), x[2]]
    )


_BARD_Y = _t(
    [0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39]
)


def bard(x: Tensor) -> Tensor:  # 8
    u = torch.arange(1, 16, dtype=x.dtype)
    v = 16 - u
    w = torch.minimum(u, v)
    return _BARD_Y - (x[0] + u / (v * x[1] + w * x[2]))


_GAUSSIAN_Y = _t(
    [
        0.0009,
        0.0044,
        0.0175,
        0.0540,
        0.1295,
        0.2420,
        0.3521,
        0.3989,
        0.3521,
        0.2420,
        0.1295,
        0.0540,
        0.0175,
        0.0044,
        0.0009,
    ]
)


def gaussian(x: Tensor) -> Tensor:  # 9
    t = (8 - torch.arange(1, 16, dtype=x.dtype)) / 2
    return x[0] * torch.exp(-x[1] * (t - x[2]) ** 2 / 2) - _GAUSSIAN_Y


def gulf(x: Tensor) -> Tensor:  # 11, m = 99
    t = torch.arange(1, 100, dtype=x.dtype) / 100
    y = 25 + (-50 * torch.log(t)) ** (2 / 3)
    return torch.exp(-((y - x[1]).abs() ** x[2]) / x[0]) - t


def box_3d(x: Tensor) -> Tensor:  # 12, m = 10
    t = 0.1 * torch.arange(1, 11, dtype=x.dtype)
    return torch.exp(-t * x[0]) - torch.exp(-t * x[1]) - x[2] * (torch.exp(-t) - torch.exp(-10 * t))


def powell_singular(x: Tensor) -> Tensor:  # 13, and 22 (extended)
    a, b, c, d = x[0::4], x[1::4], x[2::4], x[3::4]
    return torch.cat(
        [a + 10 * b, math.sqrt(5) * (c - d), (b - 2 * c) ** 2, math.sqrt(10) * (a - d) ** 2]
    )


def wood(x: Tensor) -> Tensor:  # 14
    return torch.stack(
        [
            10 * (x[1] - x[0] ** 2),
            1 - x[0],
            math.sqrt(90) * (x[3] - x[2] ** 2),
            1 - x[2],
            math.sqrt(10) * (x[1] + x[3] - 2),
            (x[1] - x[3]) / math.sqrt(10),
        ]
    )


_KOWALIK_Y = _t(
    [0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246]
)
_KOWALIK_U = _t([4, 2, 1, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625])


def kowalik_osborne(x: Tensor) -> Tensor:  # 15
    u = _KOWALIK_U
    return _KOWALIK_Y - x[0] * (u**2 + u * x[1]) / (u**2 + u * x[2] + x[3])


def brown_dennis(x: Tensor) -> Tensor:  # 16, m = 20
    t = torch.arange(1, 21, dtype=x.dtype) / 5
    return (x[0] + t * x[1] - torch.exp(t)) ** 2 + (x[2] + x[3] * torch.sin(t) - torch.cos(t)) ** 2


_OSBORNE1_Y = _t(
    [
        0.844,
        0.908,
        0.932,
        0.936,
        0.925,
        0.908,
        0.881,
        0.850,
        0.818,
        0.784,
        0.751,
        0.718,
        0.685,
        0.658,
        0.628,
        0.603,
        0.580,
        0.558,
        0.538,
        0.522,
        0.506,
        0.490,
        0.478,
        0.467,
        0.457,
        0.448,
        0.438,
        0.431,
        0.424,
        0.420,
        0.414,
        0.411,
        0.406,
    ]
)


def osborne1(x: Tensor) -> Tensor:  # 17, m = 33
    t = 10 * torch.arange(33, dtype=x.dtype)
    return _OSBORNE1_Y - (x[0] + x[1] * torch.exp(-t * x[3]) + x[2] * torch.exp(-t * x[4]))


def biggs_exp6(x: Tensor) -> Tensor:  # 18, m = 13
    t = 0.1 * torch.arange(1, 14, dtype=x.dtype)
    y = torch.exp(-t) - 5 * torch.exp(-10 * t) + 3 * torch.exp(-4 * t)
    return (
        x[2] * torch.exp(-t * x[0]) - x[3] * torch.exp(-t * x[1]) + x[5] * torch.exp(-t * x[4]) - y
    )


def watson(x: Tensor) -> Tensor:  # 20, m = 31
    n = x.numel()
    t = torch.arange(1, 30, dtype=x.dtype) / 29
    j = torch.arange(n, dtype=x.dtype)
    powers = t[:, None] ** j  # (29, n): t^(j−1) for j = 1..n
    first = (powers[:, :-1] * (j[1:] * x[1:])).sum(1)  # Σ (j−1)x_j t^(j−2), j = 2..n
    second = powers @ x
    return torch.cat([first - second**2 - 1, x[:1], (x[1] - x[0] ** 2 - 1)[None]])


def penalty1(x: Tensor) -> Tensor:  # 23
    return torch.cat([math.sqrt(1e-5) * (x - 1), (x @ x - 0.25)[None]])


def penalty2(x: Tensor) -> Tensor:  # 24
    n = x.numel()
    a = math.sqrt(1e-5)
    i = torch.arange(2, n + 1, dtype=x.dtype)
    y = torch.exp(i / 10) + torch.exp((i - 1) / 10)
    weights = torch.arange(n, 0, -1, dtype=x.dtype)
    return torch.cat(
        [
            (x[0] - 0.2)[None],
            a * (torch.exp(x[1:] / 10) + torch.exp(x[:-1] / 10) - y),
            a * (torch.exp(x[1:] / 10) - math.exp(-0.1)),
            ((weights * x**2).sum() - 1)[None],
        ]
    )


def variably_dimensioned(x: Tensor) -> Tensor:  # 25
    j = torch.arange(1, x.numel() + 1, dtype=x.dtype)
    s = (j * (x - 1)).sum()
    return torch.cat([x - 1, s[None], (s**2)[None]])


def trigonometric(x: Tensor) -> Tensor:  # 26
    n = x.numel()
    i = torch.arange(1, n + 1, dtype=x.dtype)
    return n - torch.cos(x).sum() + i * (1 - torch.cos(x)) - torch.sin(x)


def brown_almost_linear(x: Tensor) -> Tensor:  # 27
    n = x.numel()
    return torch.cat([x[:-1] + x.sum() - (n + 1), (torch.prod(x) - 1)[None]])


def _boundary_grid(x: Tensor) -> tuple[float, Tensor]:
    h = 1 / (x.numel() + 1)
    return h, h * torch.arange(1, x.numel() + 1, dtype=x.dtype)


def discrete_boundary_value(x: Tensor) -> Tensor:  # 28
    h, t = _boundary_grid(x)
    padded = torch.nn.functional.pad(x, (1, 1))
    return 2 * x - padded[:-2] - padded[2:] + h**2 * (x + t + 1) ** 3 / 2


def discrete_integral_equation(x: Tensor) -> Tensor:  # 29
    h, t = _boundary_grid(x)
    cube = (x + t + 1) ** 3
    lower = torch.cumsum(t * cube, 0)  # Σ_{j ≤ i} t_j (x_j + t_j + 1)³
    upper = torch.flip(torch.cumsum(torch.flip((1 - t) * cube, [0]), 0), [0]) - (1 - t) * cube
    return x + h * ((1 - t) * lower + t * upper) / 2


def broyden_tridiagonal(x: Tensor) -> Tensor:  # 30
    padded = torch.nn.functional.pad(x, (1, 1))
    return (3 - 2 * x) * x - padded[:-2] - 2 * padded[2:] + 1


def broyden_banded(x: Tensor) -> Tensor:  # 31
    n = x.numel()
    i = torch.arange(n)
    band = (i[None, :] >= i[:, None] - 5) & (i[None, :] <= i[:, None] + 1) & (i[None] != i[:, None])
    return x * (2 + 5 * x**2) + 1 - band.to(x.dtype) @ (x * (1 + x))


def linear_full_rank(x: Tensor, m: int = 20) -> Tensor:  # 32
    s = x.sum()
    return torch.cat([x - 2 * s / m - 1, (-2 * s / m - 1).expand(m - x.numel())])


def linear_rank1(x: Tensor, m: int = 20) -> Tensor:  # 33
    j = torch.arange(1, x.numel() + 1, dtype=x.dtype)
    return torch.arange(1, m + 1, dtype=x.dtype) * (j @ x) - 1


def linear_rank1_zero(x: Tensor, m: int = 20) -> Tensor:  # 34
    n = x.numel()
    j = torch.arange(2, n, dtype=x.dtype)
    s = j @ x[1:-1]
    inner = torch.arange(1, m - 1, dtype=x.dtype) * s - 1  # rows 2..m−1: (i − 1)·s − 1
    minus_one = -torch.ones(1, dtype=x.dtype)
    return torch.cat([minus_one, inner, minus_one])


def chebyquad(x: Tensor) -> Tensor:  # 35, m = n
    n = x.numel()
    y = 2 * x - 1  # shifted Chebyshev polynomials T*_i(x) = T_i(2x − 1)
    rows, prev, cur = [], torch.ones_like(y), y
    for i in range(1, n + 1):
        integral = -1 / (i * i - 1) if i % 2 == 0 else 0.0
        rows.append(cur.mean() - integral)
        prev, cur = cur, 2 * y * cur - prev
    return torch.stack(rows)


def extended_wood(x: Tensor) -> Tensor:  # CUTE's WOODS: Wood's function on blocks of 4
    a, b, c, d = x[0::4], x[1::4], x[2::4], x[3::4]
    return torch.cat(
        [
            10 * (b - a**2),
            1 - a,
            math.sqrt(90) * (d - c**2),
            1 - c,
            math.sqrt(10) * (b + d - 2),
            (b - d) / math.sqrt(10),
        ]
    )


def _rosenbrock_x0(n: int) -> tuple[float, ...]:
    return tuple(-1.2 if i % 2 == 0 else 1.0 for i in range(n))


def _grid_x0(n: int) -> tuple[float, ...]:
    h = 1 / (n + 1)
    return tuple((i * h) * (i * h - 1) for i in range(1, n + 1))


MGH: list[MGHProblem] = [
    MGHProblem("rosenbrock", rosenbrock, (-1.2, 1.0), 0.0),
    MGHProblem("freudenstein-roth", freudenstein_roth, (0.5, -2.0)),  # 0 or 48.9842 (local)
    MGHProblem("powell-badly-scaled", powell_badly_scaled, (0.0, 1.0), 0.0),
    MGHProblem("brown-badly-scaled", brown_badly_scaled, (1.0, 1.0), 0.0),
    MGHProblem("beale", beale, (1.0, 1.0), 0.0),
    MGHProblem("jennrich-sampson", jennrich_sampson, (0.3, 0.4), 124.362),
    MGHProblem("helical-valley", helical_valley, (-1.0, 0.0, 0.0), 0.0),
    MGHProblem("bard", bard, (1.0, 1.0, 1.0), 8.21487e-3),
    MGHProblem("gaussian", gaussian, (0.4, 1.0, 0.0), 1.12793e-8),
    MGHProblem("gulf", gulf, (5.0, 2.5, 0.15), 0.0),
    MGHProblem("box-3d", box_3d, (0.0, 10.0, 20.0), 0.0),
    MGHProblem("powell-singular", powell_singular, (3.0, -1.0, 0.0, 1.0), 0.0),
    MGHProblem("wood", wood, (-3.0, -1.0, -3.0, -1.0), 0.0),
    MGHProblem("kowalik-osborne", kowalik_osborne, (0.25, 0.39, 0.415, 0.39), 3.07505e-4),
    MGHProblem("brown-dennis", brown_dennis, (25.0, 5.0, -5.0, -1.0), 85822.2),
    MGHProblem("osborne1", osborne1, (0.5, 1.5, -1.0, 0.01, 0.02), 5.46489e-5),
    MGHProblem("biggs-exp6", biggs_exp6, (1.0, 2.0, 1.0, 1.0, 1.0, 1.0)),  # 0 or 5.65565e-3
    MGHProblem("watson-6", watson, (0.0,) * 6, 2.28767e-3),
    MGHProblem("watson-9", watson, (0.0,) * 9, 1.39976e-6),
    MGHProblem("extended-rosenbrock-10", rosenbrock, _rosenbrock_x0(10), 0.0),
    MGHProblem("extended-rosenbrock-100", rosenbrock, _rosenbrock_x0(100), 0.0),
    MGHProblem("extended-powell-8", powell_singular, (3.0, -1.0, 0.0, 1.0) * 2, 0.0),
    MGHProblem("extended-powell-20", powell_singular, (3.0, -1.0, 0.0, 1.0) * 5, 0.0),
    MGHProblem("penalty1-4", penalty1, (1.0, 2.0, 3.0, 4.0), 2.24998e-5),
    MGHProblem("penalty1-10", penalty1, tuple(float(j) for j in range(1, 11)), 7.08765e-5),
    MGHProblem("penalty2-4", penalty2, (0.5,) * 4, 9.37629e-6),
    MGHProblem("penalty2-10", penalty2, (0.5,) * 10, 2.93660e-4),
    MGHProblem(
        "variably-dimensioned-10",
        variably_dimensioned,
        tuple(1 - j / 10 for j in range(1, 11)),
        0.0,
    ),
    MGHProblem("trigonometric-10", trigonometric, (0.1,) * 10),  # 0 or 2.79506e-5 (local)
    MGHProblem("brown-almost-linear-10", brown_almost_linear, (0.5,) * 10, 0.0),
    MGHProblem("discrete-boundary-10", discrete_boundary_value, _grid_x0(10), 0.0),
    MGHProblem("discrete-boundary-50", discrete_boundary_value, _grid_x0(50), 0.0),
    MGHProblem("discrete-integral-10", discrete_integral_equation, _grid_x0(10), 0.0),
    MGHProblem("broyden-tridiagonal-10", broyden_tridiagonal, (-1.0,) * 10, 0.0),
    MGHProblem("broyden-tridiagonal-50", broyden_tridiagonal, (-1.0,) * 50, 0.0),
    MGHProblem("broyden-banded-10", broyden_banded, (-1.0,) * 10, 0.0),
    MGHProblem("linear-full-rank-10", linear_full_rank, (1.0,) * 10, 10.0),
    MGHProblem("linear-rank1-10", linear_rank1, (1.0,) * 10, 20 * 19 / (2 * 41)),
    MGHProblem("linear-rank1-zero-10", linear_rank1_zero, (1.0,) * 10, (400 + 60 - 6) / (2 * 37)),
    MGHProblem("chebyquad-8", chebyquad, tuple(j / 9 for j in range(1, 9)), 3.51687e-3),
]


LARGER: list[MGHProblem] = [
    MGHProblem("extended-wood-100", extended_wood, (-3.0, -1.0, -3.0, -1.0) * 25, 0.0),
    MGHProblem("extended-powell-100", powell_singular, (3.0, -1.0, 0.0, 1.0) * 25, 0.0),
    MGHProblem("broyden-tridiagonal-100", broyden_tridiagonal, (-1.0,) * 100, 0.0),
]
"""Larger sizes, where scipy's BFGS (H₀ = I, never rescaled) is slow: the slow battery's."""


def scipy_counted(
    problem: MGHProblem,
) -> tuple[Callable[[np.ndarray], tuple[float, np.ndarray]], list[int]]:
    """(fun returning (f, ∇f) for scipy with ``jac=True``, [evaluations]): evaluations are
    counted inside the objective, as dlopt's ``nfev`` is."""
    count = [0]

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        count[0] += 1
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        f = problem.f(t)
        (g,) = torch.autograd.grad(f, t)
        return float(f.detach()), g.numpy()

    return fun, count


def torch_counted(
    problem: MGHProblem, values: list[float] | None = None
) -> tuple[Callable[[Tensor], Tensor], list[int]]:
    """(fun for dlopt, [evaluations]); each evaluation's f is appended to `values` if given."""
    count = [0]

    def fun(x: Tensor) -> Tensor:
        count[0] += 1
        f = problem.f(x)
        if values is not None:
            values.append(float(f.detach()))
        return f

    return fun, count


def _hessp(problem: MGHProblem, count: list[int]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def hessp(x: np.ndarray, p: np.ndarray) -> np.ndarray:
        count[1] += 1
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(problem.f(t), t, create_graph=True)
        (hp,) = torch.autograd.grad(g, t, torch.tensor(p, dtype=torch.float64))
        return hp.numpy()

    return hessp


def _hess(problem: MGHProblem, count: list[int]) -> Callable[[np.ndarray], np.ndarray]:
    def hess(x: np.ndarray) -> np.ndarray:
        count[1] += 1
        return torch.autograd.functional.hessian(problem.f, torch.tensor(x)).numpy()

    return hess


SCIPY_METHOD = {
    "cg": "CG",
    "cg-pr": "CG",
    "bfgs": "BFGS",
    "lbfgs": "L-BFGS-B",
    "newton-cg": "Newton-CG",
    "newton": "trust-exact",
}
TOL = 1e-5
MAX_ITER = 20_000


SHORT_RELATIVE, SHORT_ABSOLUTE = 1e-3, 1e-10
"""scipy "stopped short" when its final f exceeds dlopt's by more than 0.1 % plus 1e-10."""


@dataclass(frozen=True)
class Comparison:
    """One method on one problem: dlopt's and scipy's evaluations (f and ∇f together, counted
    inside the objective), whether each reached ‖∇f‖∞ ≤ TOL, and the final values.

    ``ours_nfev_at_theirs_f``: where scipy stopped short — passed ‖∇f‖∞ ≤ TOL at an f above
    dlopt's final one by more than ``SHORT_RELATIVE``·|f| + ``SHORT_ABSOLUTE`` — the evaluations
    dlopt took to first reach scipy's final f; else None. The two then compare at equal
    achieved accuracy (``fair_ratio``): the shared gradient test ends a run wherever ∇f is
    small, which on a flat valley floor can be far from the minimizer (MGH Powell badly scaled:
    L-BFGS-B stops at f = 2.4e-7, x₂ = 7.42 against x₂* = 9.106, where f* = 0)."""

    problem: str
    method: str
    ours_nfev: int
    theirs_nfev: int
    ours_converged: bool
    theirs_converged: bool
    ours_f: float
    theirs_f: float
    ours_nfev_at_theirs_f: int | None = None

    @property
    def ratio(self) -> float:
        return self.ours_nfev / max(self.theirs_nfev, 1)

    @property
    def theirs_stopped_short(self) -> bool:
        return self.ours_nfev_at_theirs_f is not None

    @property
    def fair_ratio(self) -> float:
        """The ratio at equal achieved accuracy: dlopt's evaluations to reach scipy's final f
        where scipy stopped short, else ``ratio``."""
        if self.ours_nfev_at_theirs_f is None:
            return self.ratio
        return self.ours_nfev_at_theirs_f / max(self.theirs_nfev, 1)


def stopped_short(theirs_f: float, ours_f: float) -> bool:
    return theirs_f > ours_f + SHORT_RELATIVE * abs(ours_f) + SHORT_ABSOLUTE


def compare(problem: MGHProblem, method: str) -> Comparison:
    """dlopt's `method` and its scipy counterpart from the problem's standard start."""
    import warnings

    import scipy.optimize

    from dlopt.optim import minimize

    values: list[float] = []
    fun, ours_count = torch_counted(problem, values)
    ours = minimize(fun, problem.start(), method=method, tol=TOL, max_iter=MAX_ITER)
    theirs_fun, count = scipy_counted(problem)
    count.append(0)  # Hessian products / Hessians
    name = SCIPY_METHOD[method]
    options: dict[str, float | int] = {"maxiter": MAX_ITER}
    kwargs: dict[str, object] = {}
    if name in ("CG", "BFGS", "trust-exact"):
        options["gtol"] = TOL
    if name == "L-BFGS-B":
        options.update(gtol=TOL, ftol=0.0, maxfun=10 * MAX_ITER)
    if name == "Newton-CG":
        kwargs["hessp"] = _hessp(problem, count)
    if name == "trust-exact":
        kwargs["hess"] = _hess(problem, count)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = scipy.optimize.minimize(
                theirs_fun, np.array(problem.x0), jac=True, method=name, options=options, **kwargs
            )
            theirs_x = result.x
        except (np.linalg.LinAlgError, ValueError, OverflowError):
            theirs_x = None
    if theirs_x is not None:
        f, g = scipy_counted(problem)[0](theirs_x)
        theirs_ok, theirs_f = bool(np.isfinite(f) and np.abs(g).max() <= TOL), f
    else:
        theirs_ok, theirs_f = False, math.nan
    at_theirs_f = None
    if ours.success and theirs_ok and stopped_short(theirs_f, ours.fun):
        at_theirs_f = next(k for k, f in enumerate(values, 1) if f <= theirs_f)
    return Comparison(
        problem.name,
        method,
        ours_count[0],
        count[0],
        ours.success,
        theirs_ok,
        ours.fun,
        theirs_f,
        at_theirs_f,
    )


NEARBY = (0.0, 1e-12, -1e-12)  # relative changes of the start, see median_fair_ratio


def median_fair_ratio(
    problem: MGHProblem, method: str, first: Comparison | None = None
) -> tuple[float, list[Comparison]]:
    """The median fair ratio from the standard start (`first`, when already compared) and
    from it scaled by 1 ± 10⁻¹², with the three comparisons. Some paths are chaotic: Newton on Biggs EXP6 takes 66–84
    evaluations from starts that differ in the 12th digit, and which of them one machine's
    rounding gives is chance; SciPy's trust-exact takes 39 from each. Starts where SciPy does
    not converge are left out."""
    runs = [
        first
        if e == 0 and first is not None
        else compare(replace(problem, x0=tuple(x * (1 + e) for x in problem.x0)), method)
        for e in NEARBY
    ]
    ratios = [c.fair_ratio for c in runs if c.theirs_converged]
    return (statistics.median(ratios) if ratios else math.inf), runs
