"""A search's progress: k/N over the study's settled trials, the best value so far and the
pruned count; plain lines when not on a terminal, a rich bar when on one."""

from __future__ import annotations

import io

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from dlopt.search.progress import SearchProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def study_with(states_values):
    study = optuna.create_study(direction="minimize")
    study.set_metric_names(["val_loss"])
    for i, (state, value) in enumerate(states_values):
        trial = create_trial(
            state=state,
            value=value,
            params={"x": 0.1 * (i + 1)},
            distributions={"x": FloatDistribution(0.0, 1.0)},
            intermediate_values={1: 0.9, 2: 0.8} if state == TrialState.PRUNED else {},
        )
        study.add_trial(trial)
    return study


def test_a_piped_search_prints_one_line_per_trial_with_k_of_n_best_and_pruned(recwarn):
    study = study_with([(TrialState.COMPLETE, 0.5), (TrialState.COMPLETE, 0.25)])
    stream = io.StringIO()
    progress = SearchProgress(5, "val_loss", stream=stream)
    progress(study, study.trials[1])
    pruned = study_with(
        [(TrialState.COMPLETE, 0.5), (TrialState.COMPLETE, 0.25), (TrialState.PRUNED, None)]
    )
    progress(pruned, pruned.trials[2])
    lines = stream.getvalue().splitlines()
    assert lines == [
        "search 2/5 · trial 1: x=0.2 → val_loss 0.25 · best val_loss 0.25 (trial 1)",
        "search 3/5 · trial 2: x=0.3 → pruned after epoch 2 · best val_loss 0.25 (trial 1)"
        " · 1 pruned",
    ]
    quiet = io.StringIO()
    SearchProgress(5, "val_loss", stream=quiet, enabled=False)(study, study.trials[1])
    assert quiet.getvalue() == ""


def test_on_a_terminal_the_bar_shows_k_of_n_and_the_best_so_far(recwarn):
    study = study_with([(TrialState.COMPLETE, 0.5)])
    stream = Terminal()
    progress = SearchProgress(4, "val_loss", stream=stream)
    trial = study.ask()
    progress.started(trial, "trial-0001")
    study.tell(trial, 0.125)
    progress(study, study.trials[1])
    progress.close()
    text = stream.getvalue()
    assert "2/4" in text and "best val_loss 0.125 (trial 1)" in text
    assert "trial 1: x=" not in text or "→ val_loss 0.125" in text
