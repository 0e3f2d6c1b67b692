"""The error contract in Python (issue 15): a bad argument to a library function raises
InvalidParameterError — a DloptError (the CLI's exit 2) that is also the ValueError or TypeError
Python users catch, as scikit-learn's InvalidParameterError is."""

from __future__ import annotations

import re

import pytest
import torch

import dlopt
from dlopt.errors import DloptError, InvalidParameterError
from dlopt.nn import mlp

from .conftest import ROOT

# pydantic validators must raise ValueError (pydantic turns it into a ConfigError with the
# field's location); a registry clash is a bug in dlopt (exit 1), not a user's mistake
ALLOWED = {"src/dlopt/lab/sections.py", "src/dlopt/lab/config.py"}
BUG = "registered twice"


def test_the_class_is_every_exception_a_caller_may_catch():
    assert issubclass(InvalidParameterError, DloptError)
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(InvalidParameterError, TypeError)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: mlp(4, 2, (0,)), "mlp(hidden=...) must be an int >= 1"),
        (lambda: mlp(4, 2, (8,), dropout=1.5), "mlp(dropout=...) must lie in [0, 1)"),
        (lambda: mlp(4, 2, (8,), activation="rellu"), "Did you mean 'relu'"),
        (lambda: dlopt.optim.minimize(lambda x: x.sum(), "x"), "minimize(x0=...)"),
        (lambda: dlopt.optim.minimize(lambda x: x.sum(), torch.zeros(0)), "is empty"),
    ],
)
def test_bad_library_arguments_are_caught_as_value_and_type_errors(call, needle):
    for kind in (ValueError, TypeError, DloptError):
        with pytest.raises(kind) as caught:
            call()
        assert type(caught.value) is InvalidParameterError
        assert needle in str(caught.value)
        assert "\n" not in str(caught.value)


def test_no_plain_value_or_type_error_is_raised_for_a_user_value():
    """A source scan: `raise ValueError(` / `raise TypeError(` only where pydantic needs it."""
    pattern = re.compile(r"raise (ValueError|TypeError)\(")
    found = []
    for path in sorted((ROOT / "src" / "dlopt").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        if name in ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and BUG not in line:
                found.append(f"{name}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
