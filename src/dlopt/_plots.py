"""Matplotlib (Agg) figures saved atomically as PNG."""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlopt._io import write_bytes_atomic


@functools.cache
def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, imported at the first figure (not at start-up:
    a command that refuses its input, or draws nothing, never pays for it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)


def colors(n: int) -> list[Any]:
    """`n` distinguishable colours (tab20 beyond the default ten)."""
    cmap = pyplot().get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def figure(ncols: int = 1, *, width: float = 5.0, height: float = 3.6) -> tuple[Any, Any]:
    fig, axes = pyplot().subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def plot_history(
    history: Sequence[dict[str, float]],
    path: str | Path,
    *,
    title: str = "",
    marks: dict[str, float] | None = None,
) -> Path:
    """Loss (left) and accuracy, if logged (right), against epochs; `marks` draws vertical lines."""
    has_acc = any("accuracy" in h or "val_accuracy" in h for h in history)
    fig, axes = figure(2 if has_acc else 1)
    epochs = [h["epoch"] for h in history]
    panels = [("loss", axes[0])] + ([("accuracy", axes[1])] if has_acc else [])
    for metric, ax in panels:
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [h.get(prefix + metric, math.nan) for h in history]
            if any(math.isfinite(v) for v in values):
                ax.plot(epochs, values, style, label=(prefix or "train_") + metric)
        for label, x in (marks or {}).items():
            ax.axvline(x, color="grey", linestyle=":", linewidth=1)
            ax.annotate(label, (x, ax.get_ylim()[1]), fontsize=7, rotation=90, va="top")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
