r"""Boosting (SPEC G3): members trained in sequence, each on what its predecessors got wrong.

SAMME (Zhu, Zou, Rosset & Hastie 2009), AdaBoost for K classes. Sample weights w start at 1/n;
member m is fitted with weights w; with its weighted error e_m,

    α_m = ν (log((1 − e_m)/e_m) + log(K − 1)),   w_i ← w_i exp(α_m [h_m(x_i) ≠ y_i]),  w ← w/Σw,

and the ensemble predicts argmax_k Σ_m α_m [h_m(x) = k]. A member no better than chance
(e_m ≥ 1 − 1/K) ends the sequence and is dropped; a perfect one (e_m = 0) ends it, kept.

Gradient boosting on residuals (Friedman 2001) for squared error: F₀ = mean(y), then member m
fits the residuals r = y − F_{m−1} (the negative gradient of ½(y − F)²) and F_m = F_{m−1} + ν h_m.

A member is anything `fit_member(X, y, weights)` can fit and return as a predictor: a small
network (:func:`network_member`) or, in the tests, scikit-learn's trees, the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlopt._validation import check_finite_number, check_positive_int
from dlopt.errors import InvalidParameterError

Predictor = Callable[[Tensor], Tensor]
FitMember = Callable[[Tensor, Tensor, Tensor | None], Predictor]


@dataclass
class SAMME:
    """The fitted ensemble: members' label predictors and their weights α."""

    n_classes: int
    members: list[Predictor] = field(default_factory=list)
    alphas: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)  # each member's weighted training error

    def decision(self, X: Tensor) -> Tensor:
        """N × K: Σ_m α_m c_k(h_m(x)) / Σ_m α_m in SAMME's symmetric coding, c_k = 1 for the
        predicted class and −1/(K − 1) for the others (scikit-learn's decision_function)."""
        k = self.n_classes
        votes = sum(
            a * F.one_hot(h(X).long(), k).to(torch.float64)
            for a, h in zip(self.alphas, self.members, strict=True)
        )
        assert isinstance(votes, Tensor)
        share = votes / sum(self.alphas)  # the α-weighted share of votes for each class
        return (k * share - 1) / (k - 1)

    def predict(self, X: Tensor) -> Tensor:
        return self.decision(X).argmax(-1)


def samme(
    fit_member: FitMember,
    X: Tensor,
    y: Tensor,
    *,
    members: int = 10,
    learning_rate: float = 1.0,
    n_classes: int | None = None,
) -> SAMME:
    """Boost `members` learners with SAMME (see the module docstring); y holds labels 0…K−1."""
    check_positive_int("members", members, caller="samme")
    nu = check_finite_number("learning_rate", learning_rate, caller="samme", positive=True)
    k = int(n_classes if n_classes is not None else int(y.max()) + 1)
    if k < 2:
        raise InvalidParameterError(f"samme: needs at least 2 classes; got {k}.")
    w = torch.full((len(y),), 1.0 / len(y), dtype=torch.float64, device=y.device)
    boosted = SAMME(k)
    for m in range(members):
        h = fit_member(X, y, w.to(X.dtype))
        incorrect = (h(X).long() != y).to(torch.float64)
        error = float((w * incorrect).sum() / w.sum())
        if error <= 0:  # perfect: it decides alone from here on
            boosted.members.append(h)
            boosted.alphas.append(1.0)
            boosted.errors.append(error)
            break
        if error >= 1 - 1 / k:  # no better than chance: drop it and stop
            if not boosted.members:
                raise InvalidParameterError(
                    f"samme: the first member's weighted error {error:.3f} is no better than "
                    f"chance (1 − 1/K = {1 - 1 / k:.3f}); use a stronger member."
                )
            break
        alpha = nu * (math.log((1 - error) / error) + math.log(k - 1))
        boosted.members.append(h)
        boosted.alphas.append(alpha)
        boosted.errors.append(error)
        if m < members - 1:
            w = torch.exp(torch.log(w) + alpha * incorrect * (w > 0))
            w = w / w.sum()
    return boosted


@dataclass
class GradientBoosted:
    init: float
    learning_rate: float
    members: list[Predictor] = field(default_factory=list)

    def predict(self, X: Tensor) -> Tensor:
        out = torch.full((len(X),), self.init, dtype=torch.float64, device=X.device)
        for h in self.members:
            out = out + self.learning_rate * h(X).to(torch.float64).reshape(-1)
        return out


def gradient_boost(
    fit_member: FitMember, X: Tensor, y: Tensor, *, members: int = 100, learning_rate: float = 0.1
) -> GradientBoosted:
    """Squared-error gradient boosting: each member fits the current residuals."""
    check_positive_int("members", members, caller="gradient_boost")
    nu = check_finite_number("learning_rate", learning_rate, caller="gradient_boost", positive=True)
    target = y.to(torch.float64)
    boosted = GradientBoosted(float(target.mean()), nu)
    current = torch.full_like(target, boosted.init)
    for _ in range(members):
        h = fit_member(X, (target - current).to(X.dtype), None)
        boosted.members.append(h)
        current = current + nu * h(X).to(torch.float64).reshape(-1)
    return boosted


def network_member(
    make: Callable[[], nn.Module], *, epochs: int = 100, lr: float = 1e-2, seed: int = 0
) -> FitMember:
    """Members that are networks from `make()`, fitted full batch with Adam: weighted
    cross-entropy Σ w_i CE_i / Σ w_i for integer labels (predicting labels), squared error for
    float targets (predicting values). Seeds differ per member, drawn from `seed`."""
    check_positive_int("epochs", epochs, caller="network_member")
    counter = [seed]

    def fit(X: Tensor, y: Tensor, weights: Tensor | None) -> Predictor:
        torch.manual_seed(counter[0])
        counter[0] += 1
        model = make().to(X.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        classify = not torch.is_floating_point(y)
        w = None if weights is None else (weights / weights.sum()).to(X.dtype)
        for _ in range(epochs):
            optimizer.zero_grad(set_to_none=True)
            out = model(X)
            per = (
                F.cross_entropy(out, y, reduction="none")
                if classify
                else (out.reshape(-1) - y) ** 2
            )
            loss = per.mean() if w is None else (w * per).sum()
            loss.backward()
            optimizer.step()
        model.eval()

        @torch.no_grad()
        def predict(Z: Tensor) -> Tensor:
            out = model(Z)
            return out.argmax(-1) if classify else out.reshape(-1)

        return predict

    return fit
