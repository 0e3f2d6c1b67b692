"""dlopt: deep-learning optimization in PyTorch — a library and a command-line lab.

``dlopt.load_run(folder)`` loads a trained run (see :func:`dlopt.lab.load_run`); it is imported
on first use, so ``import dlopt`` (and the CLI's start) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlopt.lab.reuse import TrainedRun, load_run

__all__ = ["TrainedRun", "load_run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dlopt.lab import reuse

        return getattr(reuse, name)
    raise AttributeError(f"module 'dlopt' has no attribute {name!r}")
