"""Cross-entropy with the classes where torch's CPU kernel is fast."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def cross_entropy(
    output: Tensor, target: Tensor, *, reduction: str = "mean", label_smoothing: float = 0.0
) -> Tensor:
    """``F.cross_entropy`` of `output` (… × K: N × K, or members × B × K) at integer `target`
    (…), over every sample. torch's CPU log-softmax over a short last dim runs row by row, so
    on the CPU, for fewer than 16 classes and at least 2048 numbers, the classes go to dim 1
    (a view, 1 × K × N or members × K × B), where it vectorises across the samples. Forward and
    backward, 10 classes: N = 256 62 → 35 µs, N = 1024 194 → 51; 8 × 64: 108 → 36; from 16
    classes on the last dim is the faster (16: 32 against 45 µs, 64: 52 against 85). Equal to
    rounding (≤ 1e-7 relative in float32, a few ulps in float64)."""
    if (
        output.device.type == "cpu"
        and output.dim() in (2, 3)
        and target.dim() == output.dim() - 1
        and output.shape[-1] < 16
        and output.numel() >= 2048
    ):
        leading = output if output.dim() == 3 else output[None]
        return F.cross_entropy(
            leading.transpose(1, 2),
            target if target.dim() == 2 else target[None],
            reduction=reduction,
            label_smoothing=label_smoothing,
        )
    return F.cross_entropy(
        output.flatten(0, -2) if output.dim() > 2 else output,
        target.flatten() if target.dim() > 1 else target,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )
