"""D1 — early stopping: stop at the validation minimum and keep the best weights.

Setup: an over-parameterized MLP (two hidden layers of 512) on a small digits training subset
with 20 % of its labels replaced by random ones, so that memorizing the training set costs
generalization. One run trains for all epochs; a second, identical run (same seed) carries
``EarlyStopping(val_loss, patience)`` with ``restore_best_weights``.
"""

from __future__ import annotations

import torch

from dlopt._plots import figure
from dlopt.experiments.data import data_splits
from dlopt.experiments.registry import Claim, Context, Measured, experiment
from dlopt.nn import mlp
from dlopt.train import EarlyStopping, Trainer


@experiment(
    "D1",
    "Early stopping",
    [
        Claim(
            "D1",
            "Early stopping with restored best weights generalizes better than training to "
            "the last epoch in an overfitting regime",
            "test accuracy, restored early-stopped weights − last epoch's",
            0.01,
        )
    ],
)
def early_stopping_claim(ctx: Context) -> Measured:
    train_size, epochs, patience = (300, 60, 10) if ctx.quick else (500, 100, 15)
    splits = data_splits(ctx, train_size=train_size, label_noise=0.2)
    train = splits.train

    def run(callbacks: list[EarlyStopping]) -> tuple[Trainer, dict[str, float]]:
        torch.manual_seed(ctx.seed)
        model = mlp(train.n_features, 10, (512, 512))
        trainer = Trainer(
            model,
            torch.optim.Adam(model.parameters(), lr=1e-3),
            max_epochs=epochs,
            batch_size=32,
            callbacks=callbacks,
            seed=ctx.seed,
        )
        trainer.fit(train, splits.val)
        return trainer, trainer.evaluate(splits.test)

    full, full_test = run([])
    stopper = EarlyStopping("val_loss", patience=patience)
    _, stopped_test = run([stopper])
    history = full.state.history
    min_epoch, min_loss = full.state.best("val_loss")
    final_loss = history[-1]["val_loss"]
    numbers = {
        "train_size": train_size,
        "label_noise": 0.2,
        "patience": patience,
        "epochs": epochs,
        "val_loss_min_epoch": min_epoch,
        "val_loss_min": min_loss,
        "val_loss_final": final_loss,
        "stopped_epoch": stopper.stopped_epoch,
        "restored_epoch": stopper.best_epoch,
        "test_accuracy_restored": stopped_test["accuracy"],
        "test_accuracy_last_epoch": full_test["accuracy"],
    }
    effect = {"D1": stopped_test["accuracy"] - full_test["accuracy"]}
    if not ctx.first:
        return Measured(effect, numbers)
    fig, axes = figure(2)
    epochs_axis = [h["epoch"] for h in history]
    axes[0].plot(epochs_axis, [h["loss"] for h in history], label="training loss (noisy labels)")
    axes[0].plot(epochs_axis, [h["val_loss"] for h in history], label="validation loss")
    axes[1].plot(epochs_axis, [h["val_accuracy"] for h in history], label="validation accuracy")
    for ax in axes:
        ax.axvline(min_epoch, color="green", linestyle=":", label=f"minimum (epoch {min_epoch})")
        ax.axvline(
            stopper.stopped_epoch,
            color="red",
            linestyle="--",
            label=f"early stop (epoch {stopper.stopped_epoch})",
        )
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("cross-entropy")
    axes[1].set_ylabel("accuracy")
    figures = {
        "Training and validation curves, with the validation minimum and the early "
        "stop (first seed)": ctx.save(fig, "curves")
    }
    return Measured(effect, numbers, figures)
