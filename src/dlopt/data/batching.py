"""In-memory minibatches by index slicing: no DataLoader, no worker processes.

The order of epoch `e` is a permutation drawn from a generator seeded with (seed, e), so it needs
no state of its own: a resumed run at (epoch, batch) sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from dlopt._validation import check_positive_int
from dlopt.errors import InvalidParameterError


class Batches:
    """Minibatches of (X, y) held in memory, on whatever device X is on."""

    def __init__(
        self,
        X: Tensor,
        y: Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        check_positive_int("batch_size", batch_size, caller="Batches")
        if len(X) != len(y):
            raise InvalidParameterError(
                f"Batches(X, y) must have the same length; got {len(X)} and {len(y)}."
            )
        self.X, self.y = X, y
        self.batch_size = min(batch_size, len(X))
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last

    def __len__(self) -> int:
        n = len(self.X)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> Tensor | None:
        if not self.shuffle:
            return None
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.X), generator=generator).to(self.X.device)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield the batches of `epoch`, skipping the first `start` of them."""
        order = self.order(epoch)
        size = self.batch_size
        for b in range(start, len(self)):
            if order is None:
                yield self.X[b * size : (b + 1) * size], self.y[b * size : (b + 1) * size]
            else:
                index = order[b * size : (b + 1) * size]
                yield self.X[index], self.y[index]
