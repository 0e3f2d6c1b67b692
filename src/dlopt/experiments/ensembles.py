"""G5 — an ensemble beats its average member.

Five MLPs (64-64-10, tanh) on 300 training digits, trained at once as a StackedEnsemble (one
vmap-ed computation, SPEC G4): with bagging (each member on its own bootstrap resample, and its
own initial values), and with different initial values alone on the full training set. Test
accuracy of the model average (mean softmax) and of the vote, against the members' mean.
Boosting (SAMME over weak softmax regressions, G3) is reported beside it.
"""

from __future__ import annotations

import statistics

import torch

from dlopt._plots import figure
from dlopt.ensemble import StackedEnsemble, average, fit_stacked, network_member, samme, vote
from dlopt.experiments.data import digits
from dlopt.experiments.registry import Context, Outcome, experiment
from dlopt.nn import mlp

MEMBERS, TRAIN_SIZE, EPOCHS = 5, 300, 60
# the verdict, the claim taken literally: in every seed and both kinds of diversity, the model
# average's test accuracy is above its members' mean (the margins are reported beside it)


def _run(seed: int, bootstrap: bool) -> dict[str, float | list[float]]:
    splits = digits(seed, train_size=TRAIN_SIZE)
    torch.manual_seed(seed)
    ensemble = StackedEnsemble(lambda: mlp(64, 10, (64,), activation="tanh"), MEMBERS)
    fit_stacked(
        ensemble,
        splits.train.X,
        splits.train.y,
        epochs=EPOCHS,
        batch_size=32,
        lr=3e-3,
        bootstrap=bootstrap,
        seed=seed,
    )
    with torch.no_grad():
        outputs = ensemble(splits.test.X)
    y = splits.test.y

    def accuracy(predicted: torch.Tensor) -> float:
        return float((predicted == y).float().mean())

    members = [accuracy(o.argmax(-1)) for o in outputs]
    return {
        "members": members,
        "member_mean": statistics.fmean(members),
        "average": accuracy(average(outputs).argmax(-1)),
        "vote": accuracy(vote(outputs)),
    }


def _boosting(seed: int) -> dict[str, float]:
    """SAMME over weak members (softmax regressions, 15 full-batch Adam epochs), reported
    beside the claim: boosting's members are fitted to reweighted data, so the comparison is
    with its first member, the one that saw the data as it is."""
    splits = digits(seed, train_size=TRAIN_SIZE)
    weak = network_member(lambda: torch.nn.Linear(64, 10), epochs=15, lr=0.05, seed=seed)
    boosted = samme(weak, splits.train.X, splits.train.y, members=10)
    X, y = splits.test.X, splits.test.y
    return {
        "first_member": float((boosted.members[0](X) == y).float().mean()),
        "ensemble": float((boosted.predict(X) == y).float().mean()),
        "members": len(boosted.members),
    }


@experiment("G5", "An ensemble beats its average member")
def ensemble_claim(ctx: Context) -> Outcome:
    seeds = range(3 if ctx.quick else 10)
    runs = {
        kind: [_run(ctx.seed + s, bootstrap=kind == "bagging") for s in seeds]
        for kind in ("bagging", "initial values")
    }

    def mean(kind: str, key: str) -> float:
        return statistics.fmean(float(r[key]) for r in runs[kind])  # type: ignore[arg-type]

    beats = [float(r["average"]) > float(r["member_mean"]) for rs in runs.values() for r in rs]  # type: ignore[arg-type]
    confirmed = all(beats)
    numbers: dict[str, float | int] = {
        "members": MEMBERS,
        "train_size": TRAIN_SIZE,
        "seeds": len(seeds),
    }
    for kind in runs:
        key = kind.replace(" ", "_")
        for stat in ("member_mean", "average", "vote"):
            numbers[f"{key}_{stat}"] = mean(kind, stat)
        for s, r in enumerate(runs[kind]):
            numbers[f"{key}_seed{s}_average"] = float(r["average"])  # type: ignore[arg-type]
            numbers[f"{key}_seed{s}_member_mean"] = float(r["member_mean"])  # type: ignore[arg-type]
        numbers[f"{key}_best_member"] = statistics.fmean(max(r["members"]) for r in runs[kind])  # type: ignore[arg-type]
    boosting = [_boosting(ctx.seed + s) for s in seeds]
    for key in ("first_member", "ensemble"):
        numbers[f"boosting_{key}"] = statistics.fmean(b[key] for b in boosting)
    summary = (
        f"{MEMBERS} MLPs on {TRAIN_SIZE} training digits, {len(seeds)} seeds, test accuracy: "
        + "; ".join(
            f"{kind}: members' mean {mean(kind, 'member_mean'):.3f}, model average "
            f"{mean(kind, 'average'):.3f}, vote {mean(kind, 'vote'):.3f}"
            for kind in runs
        )
        + f" (model average above its members' mean in {sum(beats)}/{len(beats)} runs)."
        + f" Boosting (SAMME, 10 softmax regressions): first member "
        f"{numbers['boosting_first_member']:.3f}, boosted {numbers['boosting_ensemble']:.3f}."
    )
    return Outcome(
        confirmed, summary, numbers, {"Members and their ensemble, per seed": _plot(ctx, runs)}
    )


def _plot(ctx: Context, runs: dict[str, list[dict[str, float | list[float]]]]) -> str:
    fig, axes = figure(2)
    for ax, (kind, results) in zip(axes, runs.items(), strict=True):
        for s, r in enumerate(results):
            members = r["members"]
            assert isinstance(members, list)
            ax.scatter([s] * len(members), members, color="gray", alpha=0.6, s=14)
            ax.scatter([s], [r["average"]], color="C0", marker="*", s=90)
            ax.scatter([s], [r["vote"]], color="C1", marker="x", s=50)
        ax.set(title=kind, xlabel="seed", ylabel="test accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(["member", "model average", "vote"], fontsize=7)
    return ctx.save(fig, "members")
