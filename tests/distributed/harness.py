"""Run a function on 2 gloo ranks in spawned processes (CPU, one thread each)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, world: int, port: int, fn: Callable[..., Any], out: Path, args: Any) -> None:
    os.environ.update(OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = fn(rank, world, *args)
        torch.save(result, out / f"rank{rank}.pt")
        dist.barrier()  # leave together: none tears its connections down while another works
    finally:
        dist.destroy_process_group()


def on_ranks(fn: Callable[..., Any], tmp: Path, *args: Any, world: int = 2) -> list[Any]:
    """`fn(rank, world, *args)` on each of `world` ranks; their return values, rank order."""
    mp.spawn(_entry, args=(world, _free_port(), fn, tmp, args), nprocs=world, join=True)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(world)]
