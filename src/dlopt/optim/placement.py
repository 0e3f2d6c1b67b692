"""Where the host algebra of the methods runs: numpy on a CPU tensor's memory in place, or
torch on the device with the small numbers read back to the host in float64."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def to_device(values: np.ndarray, like: Tensor) -> Tensor:
    """Host numbers onto `like`'s device and dtype. On a GPU through pinned memory, so the
    copy is queued without waiting for the stream (a pageable copy may synchronise)."""
    host = torch.from_numpy(values)  # on the CPU in float64, .to() below returns it as is
    if like.device.type == "cuda":
        host = host.pin_memory()  # the caching host allocator keeps it until the copy is done
    return host.to(like.device, like.dtype, non_blocking=True)


def to_host(t: Tensor) -> np.ndarray:
    """A device tensor's values on the host in float64 (one blocking transfer on a GPU); also
    for dtypes numpy lacks (bfloat16)."""
    return t.to("cpu", torch.float64).numpy()


def as_float64(values: np.ndarray) -> np.ndarray:
    return values if values.dtype == np.float64 else values.astype(np.float64)


NUMPY_MAX_N = 10_000
"""The longest vectors the host algebra hands to numpy. Above it numpy's BLAS (OpenBLAS) runs
a dot product on threads of its own, which spin after each call while torch's threads, parallel
above 2¹⁵ elements, wait on them for whole scheduler ticks: on Rosenbrock n = 10⁵ (2 cores)
L-BFGS took 603 ms with numpy against 84 ms with torch alone, CG 108 against 53; at n ≤ 10⁴
numpy is faster (L-BFGS 7.9 against 10.5 ms at n = 10³) — measured A/B in one process."""


def on_host(t: Tensor) -> bool:
    """Whether the host algebra uses numpy on `t`'s memory in place: a CPU float32/float64
    tensor whose rows (vectors of the problem) are at most NUMPY_MAX_N long."""
    return (
        t.device.type == "cpu"
        and t.dtype in (torch.float32, torch.float64)
        and (t.shape[-1] if t.dim() else 1) <= NUMPY_MAX_N
    )
