"""Search spaces (SPEC H1): floats, integers — either on a log scale — categories, and
conditional parameters (active only when an earlier categorical parameter takes given values).

Sampling and grids are the chapter's: uniform, or uniform in log x for a log-scale parameter
(a learning rate from 1e-5 to 1e-1 spends as many trials per decade), and q grid points per
parameter, geometrically spaced on a log scale.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dlopt._validation import check_positive_int
from dlopt.errors import InvalidParameterError


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False
    when: tuple[str, tuple[Any, ...]] | None = None  # (categorical parameter, active values)

    def sample(self, rng: random.Random) -> float:
        if self.log:  # clamped: exp(log x) can round a hair outside the range
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
            return min(max(value, self.low), self.high)
        return rng.uniform(self.low, self.high)

    def grid(self, q: int) -> list[float]:
        if q == 1:
            return [math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2]
        if self.log:
            a, b = math.log(self.low), math.log(self.high)
            inner = [math.exp(a + (b - a) * i / (q - 1)) for i in range(1, q - 1)]
        else:
            inner = [self.low + (self.high - self.low) * i / (q - 1) for i in range(1, q - 1)]
        return [self.low, *inner, self.high]  # the ends exactly, not rounded through exp(log)

    def narrowed(self, values: Sequence[float], margin: float) -> Float:
        """The range spanned by `values`, widened by `margin` of its width (in log x for a
        log-scale parameter) on each side, within the original bounds."""
        f, inv = (math.log, math.exp) if self.log else (float, float)
        lo, hi = f(min(values)), f(max(values))
        pad = max(hi - lo, (f(self.high) - f(self.low)) * 1e-3) * margin
        low = max(inv(lo - pad), self.low)
        high = min(inv(hi + pad), self.high)
        return Float(low, high, self.log, self.when)


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False
    when: tuple[str, tuple[Any, ...]] | None = None

    def sample(self, rng: random.Random) -> int:
        return round(
            Float(self.low - 0.4999, self.high + 0.4999, self.log and self.low > 0).sample(rng)
        )

    def grid(self, q: int) -> list[int]:
        return sorted({round(v) for v in Float(self.low, self.high, self.log).grid(q)})

    def narrowed(self, values: Sequence[float], margin: float) -> Int:
        wide = Float(self.low, self.high, self.log).narrowed(values, margin)
        return Int(math.floor(wide.low), math.ceil(wide.high), self.log, self.when)


@dataclass(frozen=True)
class Categorical:
    choices: tuple[Any, ...]
    when: tuple[str, tuple[Any, ...]] | None = None

    def sample(self, rng: random.Random) -> Any:
        return rng.choice(self.choices)

    def grid(self, q: int) -> list[Any]:
        return list(self.choices)

    def narrowed(self, values: Sequence[Any], margin: float) -> Categorical:
        kept = tuple(c for c in self.choices if c in set(values))
        return Categorical(kept or self.choices, self.when)


Param = Float | Int | Categorical
Space = Mapping[str, Param]


def check_space(space: Space, caller: str = "search") -> None:
    """Bounds in order, log scales positive, choices non-empty, conditions on an earlier
    categorical parameter and on values it can take."""
    if not space:
        raise InvalidParameterError(f"{caller}(space=...) is empty: give at least one parameter.")
    seen: dict[str, Param] = {}
    for name, p in space.items():
        if isinstance(p, Float | Int):
            if not (math.isfinite(p.low) and math.isfinite(p.high) and p.low < p.high):
                raise InvalidParameterError(
                    f"{caller}: {name} needs low < high, finite; got {p.low}, {p.high}."
                )
            if p.log and p.low <= 0:
                raise InvalidParameterError(
                    f"{caller}: {name} is on a log scale, so low must be > 0; got {p.low}."
                )
        elif isinstance(p, Categorical):
            if not p.choices:
                raise InvalidParameterError(f"{caller}: {name} has no choices.")
            odd = [
                c
                for c in p.choices
                if c is not None and not isinstance(c, bool | int | float | str)
            ]
            if odd:  # Optuna stores choices as JSON scalars
                raise InvalidParameterError(
                    f"{caller}: {name}'s choices must be None, bool, int, float or str; got "
                    f"{odd[0]!r} (encode it, e.g. as a string)."
                )
        else:
            raise InvalidParameterError(
                f"{caller}: {name} must be Float, Int or Categorical; got {p!r}."
            )
        if p.when is not None:
            parent, values = p.when
            if not isinstance(seen.get(parent), Categorical):
                raise InvalidParameterError(
                    f"{caller}: {name} depends on {parent!r}, which must be a Categorical "
                    "parameter listed before it."
                )
            missing = [v for v in values if v not in seen[parent].choices]  # type: ignore[union-attr]
            if missing:
                raise InvalidParameterError(
                    f"{caller}: {name} depends on {parent} = {missing}, not among its choices."
                )
        seen[name] = p


def is_active(p: Param, params: Mapping[str, Any]) -> bool:
    return p.when is None or params.get(p.when[0]) in p.when[1]


def sample(space: Space, rng: random.Random) -> dict[str, Any]:
    """One random configuration (inactive conditional parameters left out)."""
    params: dict[str, Any] = {}
    for name, p in space.items():
        if is_active(p, params):
            params[name] = p.sample(rng)
    return params


def grid(space: Space, q: int) -> list[dict[str, Any]]:
    """Every combination of q points per numeric parameter and every category: q^m
    configurations for m numeric parameters (fewer where conditions switch some off)."""
    check_positive_int("q", q, caller="grid")
    configs: list[dict[str, Any]] = [{}]
    for name, p in space.items():
        grown = []
        for config in configs:
            if is_active(p, config):
                grown += [{**config, name: v} for v in p.grid(q)]
            else:
                grown.append(config)
        configs = grown
    return configs
