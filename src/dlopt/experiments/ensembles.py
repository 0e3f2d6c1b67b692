"""G5, G1, G3 — an ensemble beats its average member, whatever makes its members differ.

On 300 training samples, five members per ensemble: MLPs (64, tanh) trained at once as a
StackedEnsemble (one vmap-ed computation, SPEC G4) with bagging (each on its own bootstrap
resample) or with different initial values alone; members of five different architectures;
members of one architecture with five different hyper-parameter settings (learning rate,
weight decay, dropout). Per seed the effect is the model average's (mean softmax) test accuracy
minus the members' mean. Boosting (SAMME over weak softmax regressions, G3) is compared with
its first member.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from dlopt._plots import figure
from dlopt.data import Splits
from dlopt.ensemble import (
    StackedEnsemble,
    average,
    fit_stacked,
    member_outputs,
    network_member,
    samme,
    vote,
)
from dlopt.experiments.data import data_splits
from dlopt.experiments.registry import Claim, Context, Measured, experiment
from dlopt.nn import mlp
from dlopt.train import Trainer

MEMBERS, TRAIN_SIZE, EPOCHS = 5, 300, 60


def _accuracy(predicted: torch.Tensor, y: torch.Tensor) -> float:
    return float((predicted == y).float().mean())


def _scores(outputs: torch.Tensor, y: torch.Tensor) -> dict[str, float | list[float]]:
    members = [_accuracy(o.argmax(-1), y) for o in outputs]
    return {
        "members": members,
        "member_mean": statistics.fmean(members),
        "average": _accuracy(average(outputs).argmax(-1), y),
        "vote": _accuracy(vote(outputs), y),
    }


def _stacked(ctx: Context, splits: Splits, bootstrap: bool) -> dict[str, float | list[float]]:
    torch.manual_seed(ctx.derive(1 + bootstrap))
    n = splits.train.n_features
    ensemble = StackedEnsemble(lambda: mlp(n, 10, (64,), activation="tanh"), MEMBERS)
    fit_stacked(
        ensemble,
        splits.train.X,
        splits.train.y,
        epochs=EPOCHS,
        batch_size=32,
        lr=3e-3,
        bootstrap=bootstrap,
        seed=ctx.derive(3 + bootstrap),
    )
    with torch.no_grad():
        return _scores(ensemble(splits.test.X), splits.test.y)


def _members(
    ctx: Context, splits: Splits, specs: list[dict[str, Any]]
) -> dict[str, float | list[float]]:
    """Members trained one by one, each from its spec (architecture and hyper-parameters)."""
    models = []
    for i, spec in enumerate(specs):
        torch.manual_seed(ctx.derive(10 + i))
        model = mlp(
            splits.train.n_features,
            10,
            spec["hidden"],
            activation=spec["activation"],
            dropout=spec.get("dropout", 0.0),
        )
        Trainer(
            model,
            torch.optim.Adam(
                model.parameters(),
                lr=spec.get("lr", 3e-3),
                weight_decay=spec.get("weight_decay", 0.0),
            ),
            max_epochs=EPOCHS // 2,
            batch_size=32,
            seed=ctx.derive(20 + i),
        ).fit(splits.train)
        models.append(model)
    with torch.no_grad():
        return _scores(member_outputs(models, splits.test.X), splits.test.y)


ARCHITECTURES = [
    {"hidden": (64,), "activation": "tanh"},
    {"hidden": (128,), "activation": "relu"},
    {"hidden": (64, 64), "activation": "relu"},
    {"hidden": (32, 32, 32), "activation": "elu"},
    {"hidden": (256,), "activation": "gelu"},
]
HYPERPARAMETERS = [
    {"hidden": (128,), "activation": "relu", "lr": lr, "weight_decay": wd, "dropout": p}
    for lr, wd, p in (
        (1e-3, 0.0, 0.0),
        (3e-3, 1e-4, 0.0),
        (1e-2, 0.0, 0.2),
        (3e-3, 1e-3, 0.5),
        (2e-3, 0.0, 0.3),
    )
]


def _boosting(ctx: Context, splits: Splits) -> dict[str, float]:
    """SAMME over weak members (softmax regressions, 15 full-batch Adam epochs): boosting's
    members are fitted to reweighted data, so the comparison is with its first member, the one
    that saw the data as it is."""
    n = splits.train.n_features
    weak = network_member(lambda: torch.nn.Linear(n, 10), epochs=15, lr=0.05, seed=ctx.derive(5))
    boosted = samme(weak, splits.train.X, splits.train.y, members=10)
    X, y = splits.test.X, splits.test.y
    return {
        "first_member": _accuracy(boosted.members[0](X), y),
        "ensemble": _accuracy(boosted.predict(X), y),
    }


def _gain(scores: dict[str, float | list[float]]) -> float:
    return float(scores["average"]) - float(scores["member_mean"])  # type: ignore[arg-type]


@experiment(
    "G5",
    "Ensembles",
    [
        Claim(
            "G5.bagging",
            "A model average of bagged members (bootstrap resamples) beats its average member",
            "test accuracy, model average − members' mean (bagging)",
            0.005,
        ),
        Claim(
            "G5.init",
            "A model average of members differing only by initial values beats its average member",
            "test accuracy, model average − members' mean (initial values)",
            0.0,
        ),
        Claim(
            "G5.architectures",
            "A model average of members of different architectures beats its average member (G1)",
            "test accuracy, model average − members' mean (architectures)",
            0.005,
        ),
        Claim(
            "G1.hyperparameters",
            "A model average of members with different hyper-parameters beats its average member",
            "test accuracy, model average − members' mean (hyper-parameters)",
            0.005,
        ),
        Claim(
            "G3.boosting",
            "Boosting (SAMME) of weak networks beats its first member",
            "test accuracy, boosted ensemble − first member",
            0.02,
        ),
    ],
)
def ensemble_claim(ctx: Context) -> Measured:
    splits = data_splits(ctx, train_size=TRAIN_SIZE)
    runs = {
        "bagging": _stacked(ctx, splits, True),
        "initial values": _stacked(ctx, splits, False),
        "architectures": _members(ctx, splits, ARCHITECTURES),
        "hyper-parameters": _members(ctx, splits, HYPERPARAMETERS),
    }
    boosting = _boosting(ctx, splits)
    effects = {
        "G5.bagging": _gain(runs["bagging"]),
        "G5.init": _gain(runs["initial values"]),
        "G5.architectures": _gain(runs["architectures"]),
        "G1.hyperparameters": _gain(runs["hyper-parameters"]),
        "G3.boosting": boosting["ensemble"] - boosting["first_member"],
    }
    numbers: dict[str, Any] = {}
    for scores, claim in zip(
        runs.values(),
        ("G5.bagging", "G5.init", "G5.architectures", "G1.hyperparameters"),
        strict=True,
    ):
        for stat in ("member_mean", "average", "vote"):
            numbers[f"{claim}:{stat}"] = scores[stat]
        numbers[f"{claim}:best_member"] = max(scores["members"])  # type: ignore[arg-type]
    numbers.update({f"G3.boosting:{k}": v for k, v in boosting.items()})
    figures = {}
    if ctx.first:
        figures = {
            "Members (grey), model average (star) and vote (cross), first seed": _plot(ctx, runs)
        }
    return Measured(effects, numbers, figures)


def _plot(ctx: Context, runs: dict[str, dict[str, float | list[float]]]) -> str:
    fig, axes = figure(1, width=6.0)
    ax = axes[0]
    for i, r in enumerate(runs.values()):
        members = r["members"]
        assert isinstance(members, list)
        ax.scatter([i] * len(members), members, color="gray", alpha=0.6, s=14)
        ax.scatter([i], [r["average"]], color="C0", marker="*", s=90)
        ax.scatter([i], [r["vote"]], color="C1", marker="x", s=50)
    ax.set_xticks(range(len(runs)), list(runs), fontsize=8)
    ax.set(ylabel="test accuracy")
    ax.legend(["member", "model average", "vote"], fontsize=7)
    ax.grid(alpha=0.3)
    return ctx.save(fig, "members")
