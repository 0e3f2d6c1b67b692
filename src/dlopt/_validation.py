"""Argument checks whose messages all read alike: call site, rule, value (STYLE.md)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import TypeVar

from dlopt.errors import InvalidParameterError

T = TypeVar("T")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' Did you mean X?' suffix when `name` is close to one of `choices`, else ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown(kind: str, name: str, known: Iterable[str]) -> str:
    """ "unknown <kind> 'x'; known: a, b. Did you mean 'y'?" — one wording for every name list."""
    known = list(known)
    return f"unknown {kind} {name!r}; known: {', '.join(known)}." + did_you_mean(name, known)


def check_choice(name: str, value: str, choices: Mapping[str, T], *, caller: str) -> T:
    """Return ``choices[value]``; otherwise raise a ValueError listing the choices."""
    if not isinstance(value, str):
        raise InvalidParameterError(f"{caller}({name}=...) must be a string; got {value!r}.")
    if value not in choices:
        raise InvalidParameterError(
            f"{caller}({name}=...) must be one of {sorted(choices)}; got {value!r}."
            + did_you_mean(value, choices)
        )
    return choices[value]


def check_positive_int(name: str, value: object, *, caller: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterError(f"{caller}({name}=...) must be an int; got {value!r}.")
    if value < minimum:
        raise InvalidParameterError(
            f"{caller}({name}=...) must be an int >= {minimum}; got {value!r}."
        )
    return value


def check_fraction(
    name: str, value: object, *, caller: str, low_open: bool = False, high_open: bool = True
) -> float:
    """A float in [0, 1) by default; `low_open`/`high_open` exclude the ends."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameterError(f"{caller}({name}=...) must be a number; got {value!r}.")
    value = float(value)
    low_ok = value > 0 if low_open else value >= 0
    high_ok = value < 1 if high_open else value <= 1
    if not (math.isfinite(value) and low_ok and high_ok):
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise InvalidParameterError(
            f"{caller}({name}=...) must lie in {lo}0, 1{hi}; got {value!r}."
        )
    return value


def check_finite_number(
    name: str, value: object, *, caller: str, positive: bool = False, nonnegative: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameterError(f"{caller}({name}=...) must be a number; got {value!r}.")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0) or (nonnegative and value < 0):
        rule = " > 0" if positive else " ≥ 0" if nonnegative else ""
        raise InvalidParameterError(
            f"{caller}({name}=...) must be a finite number{rule}; got {value!r}."
        )
    return value
