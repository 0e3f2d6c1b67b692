"""The verdict of one sub-claim from its per-seed effects: a 95 % t-interval against a margin.

Each empirical sub-claim measures one *effect* per seed — a paired difference, e.g. test
accuracy with BN minus without, both runs sharing that seed's data split, initialization and
batch order. Over N independent seeds the effects d₁…d_N give the mean d̄, its standard error
s/√N and the 95 % Student-t confidence interval

    d̄ ± t₀.₉₇₅,N−1 · s/√N          (scipy.stats.ttest_1samp(...).confidence_interval())

The claim states, before anything runs, the side of a margin m its effect must lie on
("greater": d > m, "less": d < m). The three-way verdict:

- ``confirmed``: the whole interval lies on the claim's side of m;
- ``refuted``: the whole interval lies on the other side;
- ``inconclusive``: the interval contains m (more seeds, or a larger effect, would decide).

An *identity* sub-claim is an exact check of an implementation (a closed form, a count): it is
confirmed when every seed's value lies on the claim's side of m, refuted otherwise; its
"interval" is the range of the values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats

from dlopt.errors import InvalidParameterError

CONFIDENCE = 0.95
INTERVAL = "95 % Student-t interval of the mean over seeds (scipy.stats.ttest_1samp)"
VERDICTS = ("confirmed", "refuted", "inconclusive")


@dataclass(frozen=True)
class Decision:
    verdict: str  # one of VERDICTS
    mean: float
    ci_low: float
    ci_high: float
    se: float  # standard error of the mean (0 for one value or identical values)


def interval(values: Sequence[float]) -> tuple[float, float, float, float]:
    """(mean, ci_low, ci_high, standard error) of `values`; infinite bounds for fewer than 2."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean()) if len(x) else math.nan
    if len(x) < 2 or not np.all(np.isfinite(x)):
        return mean, -math.inf, math.inf, math.inf
    if float(np.ptp(x)) == 0.0:  # no spread: the interval is the point (t is undefined)
        return mean, mean, mean, 0.0
    test = scipy.stats.ttest_1samp(x, popmean=0.0)
    ci = test.confidence_interval(CONFIDENCE)
    return mean, float(ci.low), float(ci.high), float(scipy.stats.sem(x))


def decide(values: Sequence[float], margin: float, direction: str, kind: str) -> Decision:
    """The verdict of a sub-claim whose effect must be `direction` ("greater"/"less") than
    `margin`; see the module docstring."""
    if direction not in ("greater", "less"):
        raise InvalidParameterError(
            f"decide(direction=...) must be 'greater' or 'less'; got {direction!r}."
        )
    sign = 1.0 if direction == "greater" else -1.0
    if kind == "identity":
        x = [float(v) for v in values]
        mean = float(np.mean(x)) if x else math.nan
        ok = bool(x) and all(math.isfinite(v) and sign * (v - margin) > 0 for v in x)
        low, high = (min(x), max(x)) if x else (math.nan, math.nan)
        return Decision("confirmed" if ok else "refuted", mean, low, high, 0.0)
    mean, low, high, se = interval(values)
    if not math.isfinite(mean):
        return Decision("inconclusive", mean, low, high, se)
    near, far = (low, high) if direction == "greater" else (high, low)
    if sign * (near - margin) > 0:
        verdict = "confirmed"
    elif sign * (far - margin) < 0:
        verdict = "refuted"
    else:
        verdict = "inconclusive"
    return Decision(verdict, mean, low, high, se)


def seed_block(seed: int, n: int) -> list[int]:
    """`n` independent 31-bit seeds from `seed` (numpy's SeedSequence.spawn): blocks from
    different `seed`s do not overlap, unlike ``seed + i``."""
    children = np.random.SeedSequence(seed).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint32)[0] >> 1) for c in children]


def derive(seed: int, key: int) -> int:
    """A seed for sub-run `key` of a run seeded `seed` (independent of other keys and seeds)."""
    return int(np.random.SeedSequence([seed, key]).generate_state(1, dtype=np.uint32)[0] >> 1)
