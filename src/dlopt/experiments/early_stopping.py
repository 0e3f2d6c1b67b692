"""D1 — early stopping: stop at the validation minimum and keep the best weights.

Setup: an over-parameterized MLP (two hidden layers of 512) on a small digits training subset
with 20 % of its labels replaced by random ones, so that memorizing the training set costs
generalization. One run trains for all epochs; a second, identical run (same seed) carries
``EarlyStopping(val_loss, patience)`` with ``restore_best_weights``.
"""

from __future__ import annotations

import torch

from dlopt._plots import figure, save_figure
from dlopt.experiments.data import digits
from dlopt.experiments.registry import Context, Outcome, experiment
from dlopt.nn import mlp
from dlopt.train import EarlyStopping, Trainer


@experiment(
    "D1",
    "Early stopping stops near the validation minimum; the restored weights "
    "generalize at least as well as the last epoch's",
)
def early_stopping_claim(ctx: Context) -> Outcome:
    train_size, epochs, patience = (300, 100, 10) if ctx.quick else (500, 300, 20)
    splits = digits(ctx.seed, train_size=train_size, label_noise=0.2)
    train = splits.train

    def run(callbacks: list[EarlyStopping]) -> tuple[Trainer, dict[str, float]]:
        torch.manual_seed(ctx.seed)
        model = mlp(64, 10, (512, 512))
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
    turns_up = final_loss >= 1.1 * min_loss and min_epoch < len(history) - patience
    near = 0 <= stopper.stopped_epoch - min_epoch <= 2 * patience
    better = stopped_test["accuracy"] >= full_test["accuracy"]

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
    save_figure(fig, ctx.figure("curves"))

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
    summary = (
        f"validation loss bottoms out at epoch {min_epoch} ({min_loss:.3f}) and ends at "
        f"{final_loss:.3f} (turns up: needs ≥ 1.1× the minimum: {turns_up}); early stopping "
        f"stopped at epoch {stopper.stopped_epoch} (≤ 2·patience after the minimum: {near}) "
        f"and its restored weights score {stopped_test['accuracy']:.3f} test accuracy vs "
        f"{full_test['accuracy']:.3f} for the last epoch (≥ required: {better})."
    )
    return Outcome(
        turns_up and near and better,
        summary,
        numbers,
        {
            "Training and validation curves, with the validation minimum and the early "
            "stop": ctx.figure("curves").name
        },
    )
