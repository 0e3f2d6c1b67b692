"""Boosting against scikit-learn: SAMME with depth-1 trees as members equals
AdaBoostClassifier's (member errors, weights α, decision function); squared-error gradient
boosting with depth-2 trees equals GradientBoostingRegressor's predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes, load_digits
from sklearn.ensemble import AdaBoostClassifier, GradientBoostingRegressor
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from dlopt.ensemble import gradient_boost, network_member, samme


def tree_member(tree):
    def fit(X, y, weights):
        model = tree().fit(
            X.numpy(), y.numpy(), sample_weight=None if weights is None else weights.numpy()
        )
        return lambda Z: torch.from_numpy(model.predict(Z.numpy()))

    return fit


@pytest.mark.parametrize("learning_rate", [1.0, 0.5])
def test_samme_equals_scikit_learns_adaboost(learning_rate):
    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]
    stump = lambda: DecisionTreeClassifier(max_depth=1, random_state=0)  # noqa: E731
    ours = samme(
        tree_member(stump),
        torch.from_numpy(X),
        torch.from_numpy(y),
        members=12,
        learning_rate=learning_rate,
    )
    theirs = AdaBoostClassifier(stump(), n_estimators=12, learning_rate=learning_rate).fit(X, y)
    np.testing.assert_allclose(ours.errors, theirs.estimator_errors_, rtol=1e-10)
    np.testing.assert_allclose(ours.alphas, theirs.estimator_weights_, rtol=1e-10)
    decision = ours.decision(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(decision, theirs.decision_function(X), rtol=1e-10, atol=1e-12)
    assert (ours.predict(torch.from_numpy(X)).numpy() == theirs.predict(X)).all()


def test_gradient_boosting_equals_scikit_learns():
    X, y = load_diabetes(return_X_y=True)
    tree = lambda: DecisionTreeRegressor(max_depth=2, criterion="squared_error", random_state=0)  # noqa: E731
    ours = gradient_boost(tree_member(tree), torch.from_numpy(X), torch.from_numpy(y), members=25)
    theirs = GradientBoostingRegressor(
        n_estimators=25, learning_rate=0.1, max_depth=2, random_state=0
    ).fit(X, y)
    np.testing.assert_allclose(
        ours.predict(torch.from_numpy(X)).numpy(), theirs.predict(X), rtol=1e-10
    )


def test_boosted_networks_reduce_training_error_in_sequence():
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X[:500] / 16, dtype=torch.float32)
    y = torch.tensor(y[:500])
    weak = network_member(lambda: torch.nn.Linear(64, 10), epochs=15, lr=0.05)
    boosted = samme(weak, X, y, members=6)
    assert len(boosted.members) == 6 and all(a > 0 for a in boosted.alphas)
    first_alone = float((boosted.members[0](X) == y).float().mean())
    together = float((boosted.predict(X) == y).float().mean())
    assert together > first_alone + 0.02
    # later members face harder weights: their weighted errors grow
    assert boosted.errors[-1] > boosted.errors[0]


def test_boosting_errors_are_named():
    X, y = torch.zeros(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])

    def chance(X, y, w):  # always class 0: weighted error 2/3 = 1 − 1/K
        return lambda Z: torch.zeros(len(Z), dtype=torch.long)

    with pytest.raises(ValueError, match="no better than chance"):
        samme(chance, X, y, members=3)
    with pytest.raises(ValueError, match="members"):
        samme(chance, X, y, members=0)
    with pytest.raises(ValueError, match="learning_rate"):
        gradient_boost(chance, X, y.double(), learning_rate=0)
