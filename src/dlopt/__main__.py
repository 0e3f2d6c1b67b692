"""``python -m dlopt``: the command line (see :mod:`dlopt.cli`)."""

from dlopt.cli import entry

entry()
