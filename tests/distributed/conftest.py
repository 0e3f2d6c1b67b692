"""One spawn of 2 gloo ranks for every in-process check here (each spawn costs seconds)."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import on_ranks


def _everything(rank: int, world: int) -> dict[str, Any]:
    from . import test_data_parallel, test_second_order

    return {
        "data_parallel": test_data_parallel.on_each_rank(rank, world),
        "second_order": test_second_order.on_each_rank(rank, world),
    }


@pytest.fixture(scope="session")
def spawned(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return on_ranks(_everything, tmp_path_factory.mktemp("ranks"))
