"""I8 — second-order optimization: Newton's one step, CG's n steps, cost against tuned gradient
descent, L-BFGS on full-batch problems and its memory, and the mini-batch setting of deep nets.

All full-batch runs are float64 and stop at ‖∇f‖∞ ≤ 1e-5 (or their cap). Costs are counted
where they are paid: f+∇f evaluations inside the objective, Hessian-vector products, seconds.
First-order baselines get the best rate of a sweep. CG is compared with textbook linear CG on
the same ill-conditioned quadratic: in exact arithmetic both stop within n steps; in floating
point linear CG needs a few more at κ ≈ 600, and nonlinear CG with exact line searches should
match it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dlopt._plots import colors, figure
from dlopt.experiments.data import data_splits
from dlopt.experiments.registry import Claim, Context, Measured, experiment
from dlopt.nn import mlp
from dlopt.optim import BFGS, LBFGS, minimize
from dlopt.train import Trainer

TOL = 1e-5


def _rosenbrock(x: Tensor) -> Tensor:
    a, b = x[0::2], x[1::2]
    return (100 * (b - a**2) ** 2 + (1 - a) ** 2).sum()


def _logistic(ctx: Context) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    train = data_splits(ctx).train
    X, y = train.X.double(), train.y
    d = X.shape[1]

    def f(w: Tensor) -> Tensor:
        W, b = w[: d * 10].view(d, 10), w[d * 10 :]
        return F.cross_entropy(X @ W + b, y) + 1e-3 * (W**2).sum()

    return f, torch.zeros(d * 10 + 10, dtype=torch.float64)


def _trace(
    fun: Callable[[Tensor], Tensor], x0: Tensor, method: str, max_iter: int
) -> tuple[list[float], list[float], int, bool]:
    """Loss per iteration and the time at each, with minimize()'s callback."""
    losses, stamps = [float(fun(x0))], [0.0]
    start = time.perf_counter()

    def record(result: object) -> None:
        losses.append(result.fun)  # type: ignore[attr-defined]
        stamps.append(time.perf_counter() - start)

    result = minimize(fun, x0, method=method, tol=TOL, max_iter=max_iter, callback=record)
    return losses, stamps, result.nit, result.success


def _lbfgs_curve(
    loss: Callable[[list[Tensor]], Tensor], params: list[Tensor], budget: int
) -> list[float]:
    """Training loss at each of L-BFGS's f+∇f evaluations, up to `budget` of them."""
    sizes, shapes = [p.numel() for p in params], [p.shape for p in params]
    curve: list[float] = []

    def flat_loss(w: Tensor) -> Tensor:
        value = loss([piece.view(s) for piece, s in zip(w.split(sizes), shapes, strict=True)])
        curve.append(value.item())
        return value

    flat0 = torch.cat([p.detach().reshape(-1) for p in params])
    minimize(flat_loss, flat0, method="lbfgs", tol=1e-8, max_iter=budget)
    return curve[:budget]


def linear_cg(A: Tensor, b: Tensor, tol: float) -> int:
    """Textbook linear CG (Hestenes–Stiefel 1952) on Ax = b from 0: iterations to ‖r‖∞ ≤ tol."""
    x = torch.zeros_like(b)
    r = b.clone()
    d = r.clone()
    for k in range(10 * len(b)):
        if float(r.abs().max()) <= tol:
            return k
        Ad = A @ d
        alpha = (r @ r) / (d @ Ad)
        x = x + alpha * d
        r_new = r - alpha * Ad
        d = r_new + (r_new @ r_new) / (r @ r) * d
        r = r_new
    return 10 * len(b)


def _state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor the optimizer keeps (its curvature memory)."""

    def size(value: object) -> int:
        if isinstance(value, Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, dict):
            return sum(size(v) for v in value.values())
        if isinstance(value, list | tuple):
            return sum(size(v) for v in value)
        return 0

    return size(optimizer.state_dict()["state"])


def _counted(fun: Callable[[Tensor], Tensor]) -> tuple[Callable[[Tensor], Tensor], list[int]]:
    calls = [0]

    def wrapped(x: Tensor) -> Tensor:
        calls[0] += 1
        return fun(x)

    return wrapped, calls


def _gd_evaluations(fun: Callable[[Tensor], Tensor], x0: Tensor, cap: int) -> tuple[int, float]:
    """Gradient descent tuned by a learning-rate sweep: the fewest f+∇f evaluations to
    ‖∇f‖∞ ≤ TOL (the cap when no rate gets there) and that rate."""
    best = (cap, math.nan)
    for lr in (10.0, 3.0, 1.0, 0.3, 0.1, 0.03):  # large first: a smaller rate must beat them
        x = x0.clone().requires_grad_(True)
        for k in range(1, best[0] + 1):  # noqa: B007  (k is the evaluation count afterwards)
            loss = fun(x)
            (g,) = torch.autograd.grad(loss, x)
            if not torch.isfinite(loss) or float(g.abs().max()) <= TOL:
                break
            with torch.no_grad():
                x -= lr * g
        if torch.isfinite(loss) and float(g.abs().max()) <= TOL and k < best[0]:
            best = (k, lr)
    return best


@experiment(
    "I8",
    "Second-order optimization",
    [
        Claim(
            "I8.newton",
            "Newton's method solves a quadratic in one step",
            "Newton iterations on a 20-dim SPD quadratic (κ ≈ 600)",
            1.5,
            direction="less",
            kind="identity",
        ),
        Claim(
            "I8.cg",
            "CG solves an n-dim quadratic in n steps in exact arithmetic; in floating point "
            "dlopt's nonlinear CG with exact line searches takes textbook linear CG's steps",
            "iterations, dlopt CG (PR+, exact line search) − textbook linear CG, n = 20, κ ≈ 600",
            2.5,
            direction="less",
        ),
        Claim(
            "I8.second-order-vs-gd",
            "Second-order methods need far fewer evaluations than (tuned) gradient descent",
            "log₁₀(f+∇f evaluations of the best-tuned GD / L-BFGS's), logistic regression",
            1.0,
        ),
        Claim(
            "I8.lbfgs-full-batch",
            "L-BFGS is the practical choice for full-batch problems: at equal f+∇f evaluations "
            "it trains a full-batch MLP further than tuned Adam or SGD",
            "log₁₀(best first-order training loss / L-BFGS's) after 150 evaluations",
            1.0,
        ),
        Claim(
            "I8.lbfgs-memory",
            "L-BFGS reaches BFGS's accuracy with a small fraction of its memory",
            "log₁₀(BFGS's optimizer state bytes / L-BFGS's), both at ‖∇f‖∞ ≤ 1e-5 (0 if not)",
            1.0,
        ),
        Claim(
            "I8.minibatch",
            "Second-order methods are rarely used for deep nets: with mini-batches, Adam beats "
            "L-BFGS at an equal number of epochs",
            "test accuracy after equal epochs, Adam − mini-batch L-BFGS",
            0.0,
        ),
    ],
)
def second_order_claim(ctx: Context) -> Measured:
    generator = torch.Generator().manual_seed(ctx.seed)
    n = 20
    Q = torch.randn(n, n, generator=generator, dtype=torch.float64)
    b = torch.randn(n, generator=generator, dtype=torch.float64)
    x0 = torch.zeros(n, dtype=torch.float64)
    ill = Q @ Q.T + 0.1 * torch.eye(n, dtype=torch.float64)
    well = Q @ Q.T / n + torch.eye(n, dtype=torch.float64)

    def quadratic_of(A: Tensor) -> Callable[[Tensor], Tensor]:
        return lambda x: 0.5 * x @ A @ x - b @ x

    newton = minimize(quadratic_of(ill), x0, method="newton", tol=1e-8)
    cg = {
        m: minimize(quadratic_of(ill), x0, method=m, tol=1e-8, line_search="exact")
        for m in ("cg", "cg-fr", "cg-pr", "cg-hs")
    }
    textbook = linear_cg(ill, b, 1e-8)
    numbers: dict[str, Any] = {
        "I8.newton:iterations": newton.nit,
        "I8.cg:n": n,
        "I8.cg:condition_number": float(torch.linalg.cond(ill)),
        "I8.cg:textbook_linear_cg_iterations": textbook,
        **{f"I8.cg:{m}_iterations": r.nit for m, r in cg.items()},
        **{f"I8.cg:{m}_converged": str(r.success) for m, r in cg.items()},
        "I8.cg:cg_iterations_well_conditioned": minimize(
            quadratic_of(well), x0, method="cg", tol=1e-8, line_search="exact"
        ).nit,
        "I8.cg:textbook_iterations_well_conditioned": linear_cg(well, b, 1e-8),
    }

    cap = 2000 if ctx.quick else 4000
    logistic, w0 = _logistic(ctx)
    costs = {}
    for method in ("lbfgs", "bfgs", "newton-cg", "cg"):
        counted, calls = _counted(logistic)
        start = time.perf_counter()
        result = minimize(counted, w0, method=method, tol=TOL, max_iter=cap)
        costs[method] = (calls[0], result.nhev, time.perf_counter() - start, result.success)
    gd_evals, gd_lr = _gd_evaluations(logistic, w0, cap)
    for method, (evals, hv, seconds, ok) in costs.items():
        numbers[f"I8.second-order-vs-gd:{method}_evaluations"] = evals
        numbers[f"I8.second-order-vs-gd:{method}_hessian_vector_products"] = hv
        numbers[f"I8.second-order-vs-gd:{method}_seconds"] = seconds
        numbers[f"I8.second-order-vs-gd:{method}_converged"] = str(ok)
    numbers["I8.second-order-vs-gd:gd_evaluations"] = gd_evals
    numbers["I8.second-order-vs-gd:gd_best_lr"] = gd_lr
    numbers["I8.second-order-vs-gd:gd_cap"] = cap

    memory = _memory(logistic, w0)
    numbers.update({f"I8.lbfgs-memory:{k}": v for k, v in memory.items()})
    equal = memory["lbfgs_converged"] and memory["bfgs_converged"]
    mlp_final = _full_batch_mlp(ctx)
    numbers.update({f"I8.lbfgs-full-batch:best_loss_{k}": v for k, v in mlp_final.items()})
    first_order = min(v for k, v in mlp_final.items() if k != "L-BFGS")
    minibatch = _minibatch(ctx)
    numbers.update({f"I8.minibatch:{k}": v for k, v in minibatch.items()})
    effects = {
        "I8.newton": float(newton.nit if newton.success else math.inf),
        "I8.cg": float(cg["cg"].nit - textbook),
        "I8.second-order-vs-gd": math.log10(gd_evals / costs["lbfgs"][0]),
        "I8.lbfgs-full-batch": math.log10(first_order / max(mlp_final["L-BFGS"], 1e-300)),
        "I8.lbfgs-memory": math.log10(memory["bfgs_bytes"] / memory["lbfgs_bytes"])
        if equal
        else 0.0,
        "I8.minibatch": minibatch["adam_test_accuracy"] - minibatch["lbfgs_test_accuracy"],
    }
    figures = {}
    if ctx.first:
        figures = {
            "Loss vs iterations on Rosenbrock (n = 100) and logistic regression "
            "(first seed)": _convergence_plot(ctx, logistic, w0, cap)
        }
    return Measured(effects, numbers, figures)


def _memory(fun: Callable[[Tensor], Tensor], w0: Tensor) -> dict[str, Any]:
    """BFGS and L-BFGS (torch.optim classes) on the same full-batch problem to ‖∇f‖∞ ≤ TOL:
    the bytes each keeps, and whether both got there."""
    out: dict[str, Any] = {}
    for name, make in (("bfgs", BFGS), ("lbfgs", LBFGS)):
        w = w0.clone().requires_grad_(True)
        opt = make([w], max_iter=500, tol=TOL)

        def closure(opt: torch.optim.Optimizer = opt, w: Tensor = w) -> Tensor:
            opt.zero_grad()
            loss = fun(w)
            loss.backward()
            return loss

        opt.step(closure)
        g = torch.autograd.grad(fun(w), w)[0]
        out[f"{name}_bytes"] = _state_bytes(opt)
        out[f"{name}_converged"] = bool(float(g.abs().max()) <= 10 * TOL)
        out[f"{name}_final_loss"] = float(fun(w.detach()))
    return out


def _full_batch_mlp(ctx: Context) -> dict[str, float]:
    """Best training loss of a full-batch 64-32-10 tanh MLP after `budget` f+∇f evaluations:
    L-BFGS against Adam and SGD+momentum, each at the best rate of a small sweep."""
    train = data_splits(ctx).train
    X, y = train.X.double(), train.y
    budget = 150

    def mlp_loss(params: list[Tensor]) -> Tensor:
        W1, b1, W2, b2 = params
        return F.cross_entropy(torch.tanh(X @ W1 + b1) @ W2 + b2, y)

    def fresh() -> list[Tensor]:
        torch.manual_seed(ctx.derive(2))
        shapes = [(X.shape[1], 32), (32,), (32, 10), (10,)]
        return [(torch.randn(s, dtype=torch.float64) * 0.1).requires_grad_(True) for s in shapes]

    final = {"L-BFGS": min(_lbfgs_curve(mlp_loss, fresh(), budget))}
    for label, make, rates in (
        ("Adam", lambda p, lr: torch.optim.Adam(p, lr), (3e-3, 1e-2, 3e-2)),
        ("SGD+momentum", lambda p, lr: torch.optim.SGD(p, lr, momentum=0.9), (0.1, 0.5)),
    ):
        for lr in rates:
            params = fresh()
            opt = make(params, lr)
            best = math.inf
            for _ in range(budget):
                opt.zero_grad()
                loss = mlp_loss(params)
                loss.backward()
                best = min(best, loss.item()) if math.isfinite(loss.item()) else best
                opt.step()
            final[label] = min(final.get(label, math.inf), best)
    return final


def _minibatch(ctx: Context) -> dict[str, float]:
    """The same MLP trained by Adam and by dlopt's L-BFGS on mini-batches of 64 (one L-BFGS
    iteration per batch), for equal epochs: test accuracy and seconds."""
    splits = data_splits(ctx)
    out = {}
    for name in ("adam", "lbfgs"):
        torch.manual_seed(ctx.derive(6))
        model = mlp(splits.train.n_features, 10, (128, 128))
        opt: torch.optim.Optimizer = (
            torch.optim.Adam(model.parameters(), lr=1e-3)
            if name == "adam"
            else LBFGS(model.parameters(), max_iter=1)
        )
        trainer = Trainer(
            model,
            opt,
            max_epochs=5 if ctx.quick else 8,
            batch_size=64,
            seed=ctx.derive(7),
            nan_guard=False,
        )
        start = time.perf_counter()
        trainer.fit(splits.train)
        out[f"{name}_seconds"] = time.perf_counter() - start
        accuracy = trainer.evaluate(splits.test)["accuracy"]
        out[f"{name}_test_accuracy"] = accuracy if math.isfinite(accuracy) else 0.0
    return out


def _convergence_plot(
    ctx: Context, logistic: Callable[[Tensor], Tensor], w0: Tensor, cap: int
) -> str:
    rosen_x0 = torch.full((100,), -1.2, dtype=torch.float64)
    rosen_x0[1::2] = 1.0
    problems = {"Rosenbrock n=100": (_rosenbrock, rosen_x0), "logistic regression": (logistic, w0)}
    fig, axes = figure(2, width=4.8)
    for ax, (name, (fun, start)) in zip(axes, problems.items(), strict=True):
        runs = {m: _trace(fun, start, m, cap) for m in ("gd", "cg", "bfgs", "lbfgs", "newton-cg")}
        best = min(min(r[0]) for r in runs.values())
        for color, (label, (losses, _stamps, k, ok)) in zip(
            colors(len(runs)), runs.items(), strict=True
        ):
            ax.semilogy(
                range(len(losses)),
                [max(v - best, 1e-16) for v in losses],
                label=f"{label} ({k} it{'' if ok else ', capped'})",
                color=color,
            )
        ax.set(xlabel="iteration", ylabel="f − f*", title=name, xscale="log")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return ctx.save(fig, "convergence")
