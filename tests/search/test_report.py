"""OUT/search.html: Optuna's matplotlib figures inline, the importance panel only when it can
mean something, and coarse-to-fine rounds whose recorded ranges hold their trials."""

from __future__ import annotations

import base64
import re

import pytest

from dlopt.search import Categorical, Float, search
from dlopt.search._claim import entry_of
from dlopt.search.report import write_report
from dlopt.search.study import ROUNDS


def bowl(p):
    return (p["x"] - 0.3) ** 2 + (p["y"] - 0.6) ** 2 + (0.1 if p["kind"] == "b" else 0.0)


SPACE = {"x": Float(0.0, 1.0), "y": Float(1e-3, 1.0, log=True), "kind": Categorical(("a", "b"))}


def pngs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"base64,([A-Za-z0-9+/=]+)'", page)]


def test_coarse_to_fine_records_each_rounds_space_and_its_trials_lie_inside():
    study = search(bowl, SPACE, strategy="coarse-to-fine", n_trials=12, rounds=3, seed=2).study
    rounds = study.user_attrs[ROUNDS]
    assert [r["size"] for r in rounds] == [4, 4, 4]
    assert rounds[0]["space"]["x"] == {"low": 0.0, "high": 1.0, "log": False}
    starts = [0, 4, 8]
    for t in study.trials:  # every trial was drawn inside the range its round recorded
        r = max(i for i, s in enumerate(starts) if entry_of(t) >= s)
        space = rounds[r]["space"]
        for name in ("x", "y"):
            assert space[name]["low"] <= t.params[name] <= space[name]["high"]
        assert t.params["kind"] in space["kind"]["choices"]
    later = rounds[2]["space"]["x"]
    assert later["high"] - later["low"] < 1.0  # the rounds narrowed


@pytest.mark.slow  # the first PED-ANOVA and matplotlib calls of a process take seconds
def test_a_coarse_to_fine_page_draws_four_figures(tmp_path):
    result = search(bowl, SPACE, strategy="coarse-to-fine", n_trials=12, rounds=3, seed=2)
    study = result.study
    page = write_report(study, tmp_path / "search.html", target_name="loss").read_text()
    images = pngs(page)
    assert len(images) == 4 and all(i.startswith(b"\x89PNG") for i in images)
    for title in ("Optimization history", "Parallel coordinates", "Parameter importances"):
        assert f"<h2>{title}</h2>" in page
    assert "Coarse-to-fine" in page and "Not drawn" not in page
    assert f"best loss <b>{result.best_value:.4g}</b>" in page


def test_importances_are_left_out_with_one_parameter_or_few_trials_and_the_page_says_why(
    tmp_path,
):
    one = search(lambda p: p["x"] ** 2, {"x": Float(-1.0, 1.0)}, n_trials=10).study
    page = write_report(one, tmp_path / "one.html").read_text()
    assert "importances compare parameters, and this search has 1" in page
    assert len(pngs(page)) == 2  # history and parallel coordinates only
    few = search(bowl, SPACE, n_trials=3).study
    page = write_report(few, tmp_path / "few.html").read_text()
    assert "3 completed trials; importances need at least 8" in page
    assert "Coarse-to-fine" not in page  # a random search has no rounds


def test_search_names_the_objective_and_calls_trial_callbacks():
    seen = []
    result = search(
        lambda p: p["x"] ** 2,
        {"x": Float(-1.0, 1.0)},
        n_trials=4,
        metric_name="loss",
        callbacks=[lambda study, trial: seen.append((trial.number, trial.state.name))],
    )
    assert result.study.metric_names == ["loss"]
    assert seen == [(i, "COMPLETE") for i in range(4)]
