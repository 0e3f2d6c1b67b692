"""I1 — the first-order baselines: mini-batches and momentum reduce the gradient's noise.

With per-example gradients g_i (i = 1…N) of the training loss, their mean ḡ (the full-batch
gradient) and S = (1/N)·Σ‖g_i − ḡ‖², the mean of a mini-batch of B examples drawn without
replacement is unbiased, and

    E‖ḡ_B − ḡ‖² = (S/B)·(N − B)/(N − 1)                  (finite-population correction)

— the noise falls as 1/B, and vanishes at B = N. Momentum averages successive mini-batch
gradients, m_t = β·m_{t−1} + (1 − β)·ḡ_{B,t} (torch's buffer is m/(1 − β)); for independent
draws at fixed parameters its stationary noise is

    E‖m − ḡ‖² = (1 − β)/(1 + β) · E‖ḡ_B − ḡ‖²           (β = 0.9: the noise of a 19× batch).

Both are measured on a digits MLP against these closed forms, from exact per-example gradients
(torch.func), and the training consequence is shown: per epoch, cheap noisy mini-batch steps go
further than full-batch gradient descent.
"""

from __future__ import annotations

import math
import statistics

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from dlopt._plots import colors, figure
from dlopt.experiments.data import data_splits
from dlopt.experiments.registry import Claim, Context, Measured, experiment
from dlopt.nn import mlp

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
BETA = 0.9
MOMENTUM_BATCH = 32
Z_LIMIT = 4.0  # |measured − closed form| within 4 standard errors of the measurement


def _model(seed: int, n_features: int) -> nn.Module:
    torch.manual_seed(seed)
    return mlp(n_features, 10, (32,), activation="tanh").double()


def per_example_gradients(model: nn.Module, X: Tensor, y: Tensor) -> Tensor:
    """N × P: row i is the gradient of example i's loss with respect to all parameters."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p: dict[str, Tensor], x: Tensor, t: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(model, p, (x[None],)), t[None])

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, X, y)
    return torch.cat([g.reshape(len(X), -1) for g in grads.values()], dim=1)


def _mean_and_error(values: Tensor) -> tuple[float, float]:
    """Mean of independent draws and its standard error."""
    return float(values.mean()), float(values.std() / math.sqrt(len(values)))


def minibatch_noise(
    G: Tensor, batch: int, draws: int, generator: torch.Generator
) -> tuple[float, float]:
    """‖ḡ_B − ḡ‖² over `draws` mini-batches drawn without replacement: (mean, its error)."""
    N, g_bar = len(G), G.mean(0)
    if batch == 1:  # every example once: the exact expectation, no sampling error
        return float(((G - g_bar) ** 2).sum(1).mean()), 0.0
    keys = torch.rand(draws, N, generator=generator, dtype=torch.float64)
    index = keys.argsort(dim=1)[:, :batch]  # each row: B distinct examples
    weights = torch.zeros(draws, N, dtype=G.dtype).scatter_(1, index, 1.0 / batch)
    means = weights @ G  # draws × P, without a draws × B × P gather
    return _mean_and_error(((means - g_bar) ** 2).sum(1))


def momentum_noise(
    G: Tensor, batch: int, beta: float, steps: int, generator: torch.Generator
) -> tuple[float, float]:
    """Stationary ‖m − ḡ‖² of the averaged direction at fixed parameters: (mean, error by
    batch means, as successive m are correlated over ~(1 + β)/(1 − β) steps)."""
    N, g_bar = len(G), G.mean(0)
    m = g_bar.clone()  # started at its mean: no burn-in bias
    burn_in = int(20 / (1 - beta))
    errors = []
    for t in range(steps + burn_in):
        index = torch.randperm(N, generator=generator)[:batch]
        m.mul_(beta).add_(G[index].mean(0), alpha=1 - beta)
        if t >= burn_in:
            errors.append(float(((m - g_bar) ** 2).sum()))
    blocks = 20  # batch means: 20 blocks, each far longer than the correlation time
    size = len(errors) // blocks
    block_means = torch.tensor(
        [statistics.fmean(errors[k * size : (k + 1) * size]) for k in range(blocks)]
    )
    return _mean_and_error(block_means)


def _train(
    X: Tensor, y: Tensor, seed: int, batch: int, lr: float, momentum: float, epochs: int
) -> list[float]:
    """Training loss (whole set) after each epoch of SGD with the given batch and momentum."""
    model = _model(seed, X.shape[1])
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    generator = torch.Generator().manual_seed(seed)
    curve = []
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), batch):
            index = order[start : start + batch]
            optimizer.zero_grad()
            F.cross_entropy(model(X[index]), y[index]).backward()
            optimizer.step()
        with torch.no_grad():
            curve.append(float(F.cross_entropy(model(X), y)))
    return curve


def _best_curve(
    X: Tensor, y: Tensor, seed: int, batch: int, momentum: float, epochs: int
) -> tuple[list[float], float]:
    """The curve of the learning rate (of a log sweep) that ends lowest, and that rate."""
    runs = []
    for lr in (0.03, 0.1, 0.3, 1.0, 3.0):
        curve = _train(X, y, seed, batch, lr, momentum, epochs)
        if math.isfinite(curve[-1]):
            runs.append((curve[-1], lr, curve))
    _, lr, curve = min(runs)
    return curve, lr


@experiment(
    "I1",
    "Gradient noise and first-order baselines",
    [
        Claim(
            "I1",
            "Mini-batches and momentum reduce the gradient's noise as the closed forms say: "
            "E‖ḡ_B − ḡ‖² = (S/B)(N − B)/(N − 1), and momentum divides it by (1 + β)/(1 − β)",
            "largest |measured − closed form| over B and momentum, in standard errors",
            Z_LIMIT,
            direction="less",
        ),
        Claim(
            "I1.per-epoch",
            "Per epoch, mini-batch SGD goes further than full-batch gradient descent (each at "
            "its best learning rate)",
            "log₁₀(training loss of full-batch GD / mini-batch SGD) after equal epochs",
            0.3,
        ),
    ],
)
def gradient_noise_claim(ctx: Context) -> Measured:
    train = data_splits(ctx).train
    X, y = train.X.double(), train.y
    N = len(X)
    # a point along training, not the initialization: 100 full-batch Adam steps
    model = _model(ctx.seed, X.shape[1])
    warm = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        warm.zero_grad()
        F.cross_entropy(model(X), y).backward()
        warm.step()
    G = per_example_gradients(model, X, y)
    S = float(((G - G.mean(0)) ** 2).sum(1).mean())
    generator = torch.Generator().manual_seed(ctx.derive(1))
    draws = 300 if ctx.quick else 600
    batches = [b for b in BATCHES if b < N]
    measured = {b: minibatch_noise(G, b, draws, generator) for b in batches}
    predicted = {b: S / b * (N - b) / (N - 1) for b in batches}
    z = {
        b: abs(measured[b][0] - predicted[b]) / measured[b][1] if measured[b][1] > 0 else 0.0
        for b in batches
    }
    small = [b for b in batches if b <= N // 16]
    logs = torch.tensor([[math.log(b), math.log(measured[b][0])] for b in small])
    slope = float(
        torch.linalg.lstsq(
            torch.stack([logs[:, 0], torch.ones(len(small), dtype=logs.dtype)], 1), logs[:, 1:]
        ).solution[0, 0]
    )

    steps = 1500 if ctx.quick else 3000
    m_mean, m_error = momentum_noise(G, MOMENTUM_BATCH, BETA, steps, generator)
    m_predicted = (1 - BETA) / (1 + BETA) * predicted[MOMENTUM_BATCH]
    m_z = abs(m_mean - m_predicted) / m_error

    epochs = 6 if ctx.quick else 10
    curves = {
        f"full batch (B = {N})": _best_curve(X, y, ctx.seed, N, 0.0, epochs),
        f"mini-batch (B = {MOMENTUM_BATCH})": _best_curve(
            X, y, ctx.seed, MOMENTUM_BATCH, 0.0, epochs
        ),
        f"mini-batch + momentum {BETA}": _best_curve(X, y, ctx.seed, MOMENTUM_BATCH, BETA, epochs),
    }
    full_loss = curves[f"full batch (B = {N})"][0][-1]
    mini_loss = curves[f"mini-batch (B = {MOMENTUM_BATCH})"][0][-1]

    numbers: dict[str, float | int | str] = {
        "n_examples": N,
        "S_per_example_variance": S,
        "fitted_slope_small_batches": slope,
        "momentum_noise_measured": m_mean,
        "momentum_noise_predicted": m_predicted,
        "momentum_noise_z": m_z,
        "full_batch_final_loss": full_loss,
        "minibatch_final_loss": mini_loss,
        "momentum_final_loss": curves[f"mini-batch + momentum {BETA}"][0][-1],
    }
    for b in batches:
        numbers[f"noise_B{b}_measured"] = measured[b][0]
        numbers[f"noise_B{b}_predicted"] = predicted[b]
        numbers[f"noise_B{b}_z"] = z[b]
    effects = {
        "I1": max(max(z.values()), m_z),
        "I1.per-epoch": math.log10(full_loss / mini_loss),
    }
    figures = {}
    if ctx.first:
        fig, axes = figure(2, width=4.8)
        ax = axes[0]
        ax.loglog(batches, [predicted[b] for b in batches], color="0.5", label="(S/B)(N−B)/(N−1)")
        ax.errorbar(
            batches,
            [measured[b][0] for b in batches],
            yerr=[2 * measured[b][1] for b in batches],
            fmt="o",
            color=colors(1)[0],
            label=f"measured ({draws} batches each)",
        )
        ax.plot(
            [MOMENTUM_BATCH],
            [m_mean],
            "s",
            color=colors(2)[1],
            label=f"momentum β = {BETA}, B = 32",
        )
        ax.plot(
            [MOMENTUM_BATCH],
            [m_predicted],
            "s",
            mfc="none",
            color="0.3",
            label="(1−β)/(1+β) × that",
        )
        ax.set(xlabel="batch size B", ylabel="E‖ḡ_B − ḡ‖²", title="gradient noise (digits MLP)")
        ax.legend(fontsize=7)
        for color, (label, (curve, lr)) in zip(colors(3), curves.items(), strict=True):
            axes[1].semilogy(range(1, epochs + 1), curve, label=f"{label}, lr {lr:g}", color=color)
        axes[1].set(xlabel="epoch", ylabel="training loss", title="the same examples per epoch")
        axes[1].legend(fontsize=7)
        for a in axes:
            a.grid(alpha=0.3)

        figures = {
            "Mini-batch gradient noise vs B against the closed form, and training "
            "loss per epoch (first seed)": ctx.save(fig, "noise")
        }
    return Measured(effects, numbers, figures)
