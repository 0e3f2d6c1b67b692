"""One spawn of 2 gloo ranks for every in-process check here (each spawn costs seconds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .harness import on_ranks


def _everything(rank: int, world: int, folder: Path) -> dict[str, Any]:
    from . import test_data_parallel, test_second_order, test_torchrun

    return {
        "data_parallel": test_data_parallel.on_each_rank(
            rank, world, folder.parent / "data-parallel"
        ),
        "second_order": test_second_order.on_each_rank(rank, world),
        "torchrun": test_torchrun.on_each_rank(rank, world, folder),
    }


@pytest.fixture(scope="session")
def spawned_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder both spawned ranks train `test_torchrun.CONFIG` into."""
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def spawned(tmp_path_factory: pytest.TempPathFactory, spawned_folder: Path) -> list[dict[str, Any]]:
    return on_ranks(_everything, tmp_path_factory.mktemp("ranks"), spawned_folder)
