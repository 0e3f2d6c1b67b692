"""Hyper-parameter search: spaces and grids against their definitions, every strategy on a
function with a known minimum, persistence and resume on SQLite, worker processes, pruning."""

from __future__ import annotations

import math
import random
import statistics

import optuna
import pytest
import torch

from dlopt.search import Categorical, Float, Int, PruneTrial, grid, sample, search


def bowl(p):
    return (math.log10(p["lr"]) + 3) ** 2 + (p["w"] - 0.2) ** 2


SPACE = {"lr": Float(1e-5, 1e-1, log=True), "w": Float(0.0, 1.0)}


def test_grids_have_q_to_the_m_points_geometric_on_a_log_scale():
    points = grid(SPACE, 5)
    assert len(points) == 25
    lrs = sorted({p["lr"] for p in points})
    assert lrs == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    assert sorted({p["w"] for p in points}) == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    for m in range(1, 5):
        space = {f"x{i}": Float(0, 1) for i in range(m)}
        assert len(grid(space, 3)) == 3**m
    assert Int(1, 64, log=True).grid(4) == [1, 4, 16, 64]
    conditional = {
        "opt": Categorical(("sgd", "momentum")),
        "beta": Float(0.5, 0.99, when=("opt", ("momentum",))),
    }
    assert len(grid(conditional, 3)) == 1 + 3  # beta only where opt = momentum


def test_log_scale_sampling_spends_equal_trials_per_decade():
    rng = random.Random(0)
    decades = [math.floor(math.log10(sample(SPACE, rng)["lr"])) for _ in range(20_000)]
    shares = [decades.count(d) / 20_000 for d in range(-5, -1)]
    assert all(abs(s - 0.25) < 0.015 for s in shares)
    ints = [Int(1, 4).sample(rng) for _ in range(8000)]
    assert all(abs(ints.count(k) / 8000 - 0.25) < 0.02 for k in range(1, 5))


@pytest.mark.parametrize("strategy", ["grid", "random", "coarse-to-fine", "tpe"])
def test_every_strategy_approaches_the_minimum(strategy):
    result = search(bowl, SPACE, strategy=strategy, n_trials=40, q=5, seed=1)
    assert result.best_value < 0.05
    assert result.best_value == min(v for _, v, state in result.trials if state == "COMPLETE")
    assert len(result.trials) == (25 if strategy == "grid" else 40)


def test_manual_evaluates_exactly_the_given_configurations():
    configs = [{"lr": 1e-3, "w": 0.2}, {"lr": 1e-2, "w": 0.5}]
    result = search(bowl, SPACE, strategy="manual", configs=configs)
    assert [t[0] for t in result.trials] == configs and result.best_value == 0


def test_coarse_to_fine_searches_later_rounds_near_the_best():
    result = search(bowl, SPACE, strategy="coarse-to-fine", n_trials=60, rounds=3, seed=0)
    first, last = result.trials[:20], result.trials[40:]
    spread = [statistics.pstdev(math.log10(p["lr"]) for p, _, _ in part) for part in (first, last)]
    assert spread[1] < spread[0] / 2  # the last round samples a narrower range
    assert min(v for _, v, _ in last) < min(v for _, v, _ in first)


def test_a_search_on_sqlite_resumes_and_workers_share_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = search(bowl, SPACE, strategy="random", n_trials=12, storage=url, seed=3)
    again = search(bowl, SPACE, strategy="random", n_trials=12, storage=url, seed=3)
    assert len(again.trials) == 12 and again.best_value == first.best_value  # nothing re-run
    more = search(bowl, SPACE, strategy="tpe", n_trials=20, storage=url, study_name="dlopt")
    assert len(more.trials) == 20  # 12 kept, 8 new
    c2f = f"sqlite:///{tmp_path / 'c2f.db'}"
    whole = search(bowl, SPACE, strategy="coarse-to-fine", n_trials=30, storage=c2f, seed=2)
    again = search(bowl, SPACE, strategy="coarse-to-fine", n_trials=30, storage=c2f, seed=2)
    assert len(again.trials) == 30 and again.best_value == whole.best_value
    shared = search(bowl, SPACE, strategy="grid", q=4, storage=url, study_name="grid", workers=2)
    assert len(shared.trials) == 16 and all(state == "COMPLETE" for _, _, state in shared.trials)
    assert sorted(p["w"] for p, _, _ in shared.trials) == sorted(p["w"] for p in grid(SPACE, 4))


def test_median_pruning_stops_trials_behind_the_curve():
    def curve(params, trial):
        for step in range(10):
            value = params["w"] + 1.0 / (step + 1)
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    result = search(curve, {"w": Float(0, 1)}, strategy="random", n_trials=30, pruner="median")
    states = [state for _, _, state in result.trials]
    assert states.count("PRUNED") >= 5 and result.best_params["w"] < 0.2


def test_the_trainer_reports_to_the_trial_and_is_pruned():
    from dlopt.data import load_bundled, split_dataset
    from dlopt.nn import mlp
    from dlopt.train import Trainer

    splits = split_dataset(load_bundled("digits"), seed=0, train_size=200)
    stopped = []

    def objective(params, trial):
        torch.manual_seed(0)
        model = mlp(64, 10, (32,))
        pruning = PruneTrial(trial)
        trainer = Trainer(
            model,
            torch.optim.SGD(model.parameters(), lr=params["lr"]),
            max_epochs=8,
            callbacks=[pruning],
        )
        trainer.fit(splits.train, splits.val)
        stopped.append(trainer.state.epoch)
        pruning.raise_if_pruned()
        return trainer.state.metrics["val_loss"]

    configs = [{"lr": lr} for lr in (0.3, 0.2, 0.1, 0.05, 0.3, 1e-5, 2e-5)]
    result = search(
        objective,
        {"lr": Float(1e-5, 1, log=True)},
        strategy="manual",
        configs=configs,
        pruner="median",
    )
    states = [state for _, _, state in result.trials]
    assert states[-2:] == ["PRUNED", "PRUNED"]  # the tiny learning rates fall behind at once
    assert stopped[-1] < 8 and result.best_params["lr"] >= 0.05


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: search(bowl, {"x": Float(1, 0)}), "low < high"),
        (lambda: search(bowl, {"x": Float(0, 1, log=True)}), "log scale"),
        (lambda: search(bowl, {"b": Float(0, 1, when=("a", ("x",)))}), "Categorical"),
        (lambda: search(bowl, SPACE, strategy="manual"), "configs"),
        (lambda: search(bowl, SPACE, workers=2), "storage"),
        (lambda: search(bowl, SPACE, strategy="bayes"), "strategy"),
        (lambda: search(bowl, {}), "empty"),
    ],
)
def test_bad_searches_are_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
