"""The exceptions dlopt raises on bad input, and the exit codes the CLI maps them to.

Exit codes (RELIABILITY.md): 0 ok · 1 internal bug · 2 bad input or usage ·
3 training diverged (loss or gradient not finite) · 130 SIGINT · 143 SIGTERM.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_BUG = 1
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


def shown(source: str | Path) -> str:
    """A file name as an error line shows it: as written when printable, else its repr (a
    newline in a name cannot forge a second line)."""
    text = str(source)
    return text if text.isprintable() else repr(text)


class DloptError(ValueError):
    """Bad input: a config, data file, checkpoint or argument dlopt refuses.

    It is also a ValueError, the exception Python users expect for a bad value (as
    scikit-learn's InvalidParameterError is).

    The message is one line that names the source (a file, an option) and the reason, so the CLI
    can print it as ``error: <message>`` and exit with code 2.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, reason: str, *, source: str | Path | None = None, where: str = "") -> None:
        self.reason = " ".join(str(reason).split())  # one line, whatever the reason held
        self.source = None if source is None else str(source)
        self.where = where  # ":line[:col]" or "@byte"
        prefix = f"{shown(self.source)}{where}: " if self.source is not None else ""
        super().__init__(prefix + self.reason)


class DataError(DloptError):
    """A data file or data set that cannot be used (format, size, NaN/inf, labels)."""


class ConfigError(DloptError):
    """A configuration file or value that does not validate."""


class CheckpointError(DloptError):
    """A checkpoint that is missing, corrupt, unsafe or does not match the run."""


class InvalidParameterError(DloptError, TypeError):
    """A library function's argument of the wrong type or value (``minimize(x0=...)``,
    ``mlp(hidden=...)``): both the ValueError and the TypeError Python users catch, as
    scikit-learn's InvalidParameterError is, and a DloptError, so the CLI answers it with exit 2."""


class TrainingDiverged(Exception):
    """The loss or a gradient became non-finite; parameters were left at the last finite step."""

    exit_code = EXIT_DIVERGED

    def __init__(self, message: str, *, epoch: int, step: int) -> None:
        self.epoch = epoch
        self.step = step
        super().__init__(message)
