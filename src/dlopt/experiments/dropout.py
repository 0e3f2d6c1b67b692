"""F4, F2 and E4 — dropout and noise injection on an overfitting MLP (small training set).

Every variant trains the same way (Adam, the seed's initial state and batch order) on 300
training samples with 20 % of their labels replaced at random (as in D1), and stops early on
validation loss with its best weights restored, so each regularizer is compared at its own best
budget: the train/test gap at one fixed epoch count reverses with longer training, test
accuracy at the early-stopped optimum does not. The gap is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dlopt._plots import figure
from dlopt.data import Splits
from dlopt.experiments.data import data_splits
from dlopt.experiments.registry import Claim, Context, Measured, experiment
from dlopt.nn import P_HIDDEN, P_INPUT, Dropout, mc_dropout_predict, mlp, widen_for_dropout
from dlopt.train import EarlyStopping, Trainer

HIDDEN = (256, 256)


@dataclass(frozen=True)
class Scores:
    train: float
    test: float
    history: list[dict[str, float]]
    trainer: Trainer

    @property
    def gap(self) -> float:
        return self.train - self.test


def _train(ctx: Context, splits: Splits, **options: object) -> Scores:
    """Adam from the seed's initial state, early-stopped on validation loss with the best
    weights restored: every variant at its own best budget, not at one epoch count."""
    torch.manual_seed(ctx.seed)
    hidden = options.pop("hidden", HIDDEN)
    model = mlp(splits.train.n_features, 10, hidden, **options)  # type: ignore[arg-type]
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-3),
        max_epochs=60 if ctx.quick else 100,
        batch_size=32,
        seed=ctx.seed,
        callbacks=[EarlyStopping("val_loss", patience=10 if ctx.quick else 15)],
    )
    state = trainer.fit(splits.train, splits.val)
    return Scores(
        trainer.evaluate(splits.train)["accuracy"],
        trainer.evaluate(splits.test)["accuracy"],
        state.history,
        trainer,
    )


def subnetwork_ensemble(model: nn.Module, X: Tensor, members: int, seed: int) -> Tensor:
    """Mean softmax of `members` explicitly sampled sub-networks: each drops a fixed random
    set of units (one mask per unit, shared by every sample), scaled as inverted dropout."""
    generator = torch.Generator().manual_seed(seed)
    drops = [m for m in model.modules() if isinstance(m, Dropout)]
    model.eval()
    total = torch.zeros(())
    for _ in range(members):
        handles = []
        for layer in drops:

            def thin(
                module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor, p: float = layer.p
            ) -> Tensor:
                keep = (torch.rand(output.shape[1:], generator=generator) >= p).to(output.dtype)
                return output * keep / (1 - p)

            handles.append(layer.register_forward_hook(thin))
        with torch.no_grad():
            total = total + model(X).softmax(-1)
        for h in handles:
            h.remove()
    return total / members


def _plot(ctx: Context, name: str, runs: dict[str, Scores]) -> str:
    fig, axes = figure(2)
    for label, run in runs.items():
        epochs = [h["epoch"] for h in run.history]
        line = axes[0].plot(epochs, [h["accuracy"] for h in run.history], label=f"{label} train")
        axes[0].plot(
            epochs,
            [h["val_accuracy"] for h in run.history],
            "--",
            color=line[0].get_color(),
            label=f"{label} validation",
        )
        axes[1].plot(epochs, [h["val_loss"] for h in run.history], label=label)
    axes[0].set(xlabel="epoch", ylabel="accuracy (training accuracy with the noise on)")
    axes[1].set(xlabel="epoch", ylabel="validation cross-entropy")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return ctx.save(fig, name)


@experiment(
    "F4",
    "Dropout",
    [
        Claim(
            "F4",
            "Dropout regularizes an overfitting net: higher test accuracy at matched, "
            "early-stopped budgets",
            "test accuracy, dropout (p 0.2 in / 0.5 hidden, widened) − none, both early-stopped",
            0.005,
        ),
        Claim(
            "F2",
            "The classic (weight scaling at prediction) and inverted dropout conventions train "
            "equally well",
            "|test accuracy, classic − inverted|",
            0.02,
            direction="less",
        ),
        Claim(
            "F4.subnetworks",
            "Dropout approximates an ensemble of sub-networks: weight scaling predicts like an "
            "explicit ensemble of 20 sampled sub-networks",
            "|test accuracy, weight scaling − explicit sub-network ensemble|",
            0.02,
            direction="less",
        ),
    ],
)
def dropout_claim(ctx: Context) -> Measured:
    wide = widen_for_dropout(HIDDEN, P_HIDDEN)
    options = {"hidden": wide, "dropout": P_HIDDEN, "input_dropout": P_INPUT}
    splits = data_splits(ctx, train_size=300, label_noise=0.2)
    none = _train(ctx, splits)
    inverted = _train(ctx, splits, **options, dropout_mode="inverted")
    classic = _train(ctx, splits, **options, dropout_mode="classic")
    model = inverted.trainer.model
    y = splits.test.y
    torch.manual_seed(ctx.derive(3))
    mc = mc_dropout_predict(model, splits.test.X, samples=50)
    mc_acc = float((mc.argmax(-1) == y).double().mean())
    sub = subnetwork_ensemble(model, splits.test.X, 20, ctx.derive(4))
    sub_acc = float((sub.argmax(-1) == y).double().mean())
    effects = {
        "F4": inverted.test - none.test,
        "F2": abs(classic.test - inverted.test),
        "F4.subnetworks": abs(inverted.test - sub_acc),
    }
    numbers = {
        "hidden_without_dropout": str(HIDDEN),
        "hidden_with_dropout": str(wide),
        "label_noise": 0.2,
        "gap_without_dropout": none.gap,
        "gap_with_dropout": inverted.gap,
        "epochs_without_dropout": len(none.history),
        "epochs_with_dropout": len(inverted.history),
        "test_accuracy_without_dropout": none.test,
        "test_accuracy_inverted": inverted.test,
        "test_accuracy_classic": classic.test,
        "test_accuracy_mc_dropout_50": mc_acc,
        "test_accuracy_subnetwork_ensemble_20": sub_acc,
    }
    figures = {}
    if ctx.first:
        figures = {
            "Training (noisy labels) and validation accuracy with and without dropout, "
            "early-stopped (first seed)": _plot(
                ctx, "curves", {"no dropout": none, "dropout": inverted}
            )
        }
    return Measured(effects, numbers, figures)


@experiment(
    "E4",
    "Noise injection",
    [
        Claim(
            "E4.input",
            "Gaussian noise on the inputs regularizes: higher test accuracy at matched, "
            "early-stopped budgets",
            "test accuracy, input noise σ 0.5 − none, both early-stopped",
            0.005,
        ),
        Claim(
            "E4.hidden",
            "Gaussian noise on hidden nodes regularizes: higher test accuracy at matched, "
            "early-stopped budgets",
            "test accuracy, hidden noise σ 0.5 − none, both early-stopped",
            0.005,
        ),
    ],
)
def noise_claim(ctx: Context) -> Measured:
    splits = data_splits(ctx, train_size=300, label_noise=0.2)
    runs = {
        "no noise": _train(ctx, splits),
        "input noise σ=0.5": _train(ctx, splits, input_noise=0.5),
        "hidden noise σ=0.5": _train(ctx, splits, hidden_noise=0.5),
    }
    base = runs["no noise"].test
    effects = {
        "E4.input": runs["input noise σ=0.5"].test - base,
        "E4.hidden": runs["hidden noise σ=0.5"].test - base,
    }
    numbers = {
        f"{key}_{name.split(' σ')[0].replace(' ', '_')}": getattr(run, key)
        for name, run in runs.items()
        for key in ("gap", "test")
    }
    figures = {}
    if ctx.first:
        figures = {
            "Accuracy curves with and without noise (first seed)": _plot(ctx, "curves", runs)
        }
    return Measured(effects, numbers, figures)


@experiment(
    "C6",
    "Regularization strategy",
    [
        Claim(
            "C6.modern",
            "The modern strategy: a big model with regularization (dropout and weight decay) "
            "beats a small unregularized model",
            "test accuracy, 2×512 with dropout + weight decay − 1×32 plain, both early-stopped",
            0.005,
        )
    ],
)
def strategy_claim(ctx: Context) -> Measured:
    splits = data_splits(ctx, train_size=300, label_noise=0.2)
    small = _train(ctx, splits, hidden=(32,))
    big = _train(ctx, splits, hidden=(512, 512), dropout=P_HIDDEN, input_dropout=P_INPUT)
    numbers = {
        "test_accuracy_small": small.test,
        "test_accuracy_big_regularized": big.test,
        "gap_small": small.gap,
        "gap_big_regularized": big.gap,
    }
    return Measured({"C6.modern": big.test - small.test}, numbers)
