"""Where the trainer's batches come from: tensors held in memory, or any re-iterable of
``(x, y)`` batches such as a ``torch.utils.data.DataLoader``.

In memory, the order of epoch e is drawn from (seed, e) (see :class:`Batches`): nothing to save.
A DataLoader's order comes from its sampler's generator, so a :class:`LoaderSource` keeps that
generator's state as of the start of the epoch under way, and a resumed run restores it and
skips the batches already done. That is exact when the loader is deterministic given that
generator: a shuffling or sequential sampler over a dataset whose items do not draw from the
global RNG. Batches drawn from the global RNG inside the dataset, a custom iterable that keeps
its own unsaved state, or worker processes seeded without ``DataLoader(generator=...)`` resume
to a different (still valid) sequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, TypeGuard

import torch
from torch import Tensor
from torch.utils.data import DataLoader, RandomSampler

from dlopt.data.batching import Batches
from dlopt.data.dataset import Dataset
from dlopt.errors import InvalidParameterError

DataLike = Dataset | tuple[Tensor, Tensor]
ACCEPTED = (
    "a dlopt Dataset, an (X, y) pair of tensors, a Batches, a torch DataLoader or another "
    "re-iterable of (x, y) batches"
)


class BatchSource(Protocol):
    """What the training loop iterates: the batches of one epoch, on the model's device."""

    batches_per_epoch: int  # 0 when the source has no len()

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]: ...
    def inputs(self) -> Iterator[Tensor]: ...
    def targets_sample(self) -> Tensor: ...
    def state_dict(self, at_epoch_start: bool) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def to_device(data: DataLike, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(X, y) on `device`; X and float targets in `dtype`, class targets as they are."""
    X, y = (data.X, data.y) if isinstance(data, Dataset) else data
    y = y.to(device, dtype) if torch.is_floating_point(y) else y.to(device)
    return X.to(device, dtype), y


def is_xy_pair(data: object) -> bool:
    return (
        isinstance(data, tuple)
        and len(data) == 2
        and isinstance(data[0], Tensor)
        and isinstance(data[1], Tensor)
    )


class InMemorySource:
    """The training tensors on the model's device, sliced by index (the fast path)."""

    def __init__(self, batches: Batches) -> None:
        self.batches = batches
        self.batches_per_epoch = len(batches)
        self.epoch = batches.epoch

    def inputs(self) -> Iterator[Tensor]:
        size = self.batches.batch_size
        for i in range(0, len(self.batches.X), size):
            yield self.batches.X[i : i + size]

    def targets_sample(self) -> Tensor:
        return self.batches.y

    def state_dict(self, at_epoch_start: bool) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class LoaderSource:
    """A re-iterable of (x, y) batches, each moved to the model's device as it arrives."""

    def __init__(
        self,
        loader: Iterable[Any],
        device: torch.device,
        dtype: torch.dtype,
        seed: int,
        where: str = "Trainer.fit(train=...)",
    ) -> None:
        self.loader, self.device, self.dtype, self.where = loader, device, dtype, where
        try:
            self.batches_per_epoch = len(loader)  # type: ignore[arg-type]
        except TypeError:
            self.batches_per_epoch = 0
        self.generator = _sampler_generator(loader, seed)
        self._epoch_start: Tensor | None = None

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        sampler = _sampler(self.loader)
        if hasattr(sampler, "set_epoch"):  # DistributedSampler and its kin
            sampler.set_epoch(epoch)
        if start == 0 and self.generator is not None:
            self._epoch_start = self.generator.get_state()
        if start == 0:
            iterator = iter(self.loader)
        else:
            # a resumed epoch: replay its first `start` batches without touching the global
            # RNG, whose state is already the one saved after them
            with torch.random.fork_rng(devices=[]):
                iterator = iter(self.loader)
                for _ in range(start):
                    next(iterator, None)
        for batch in iterator:
            yield self._moved(batch)

    def inputs(self) -> Iterator[Tensor]:
        """Every training input once, in whatever order, leaving every RNG as it was."""
        state = self.generator.get_state() if self.generator is not None else None
        with torch.random.fork_rng(devices=[]):
            for batch in self.loader:
                yield self._moved(batch)[0]
        if self.generator is not None and state is not None:
            self.generator.set_state(state)

    def targets_sample(self) -> Tensor:
        state = self.generator.get_state() if self.generator is not None else None
        with torch.random.fork_rng(devices=[]):
            first = next(iter(self.loader), None)
        if self.generator is not None and state is not None:
            self.generator.set_state(state)
        if first is None:
            raise InvalidParameterError(f"{self.where} yielded no batches.")
        return self._moved(first)[1]

    def state_dict(self, at_epoch_start: bool) -> dict[str, Any]:
        if self.generator is None:
            return {}
        state = self.generator.get_state() if at_epoch_start else self._epoch_start
        return {"generator": state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("generator")
        if self.generator is not None and saved is not None:
            self.generator.set_state(saved)

    def _moved(self, batch: Any) -> tuple[Tensor, Tensor]:
        if not (isinstance(batch, list | tuple) and len(batch) == 2):
            raise InvalidParameterError(
                f"{self.where} must yield (x, y) batches; got a "
                f"{type(batch).__name__}"
                + (f" of {len(batch)}" if hasattr(batch, "__len__") else "")
                + "."
            )
        x, y = batch
        if not isinstance(x, Tensor) or not isinstance(y, Tensor):
            raise InvalidParameterError(
                f"{self.where} must yield (x, y) batches of tensors; got "
                f"({type(x).__name__}, {type(y).__name__})."
            )
        y = y.to(self.device, self.dtype) if torch.is_floating_point(y) else y.to(self.device)
        return x.to(self.device, self.dtype), y


def _sampler(loader: object) -> object:
    if not isinstance(loader, DataLoader):
        return None
    batch_sampler = loader.batch_sampler
    return getattr(batch_sampler, "sampler", None) if batch_sampler is not None else loader.sampler


def _sampler_generator(loader: object, seed: int) -> torch.Generator | None:
    """The generator behind a shuffling DataLoader's order; one without is given one seeded
    from `seed` (the loader and its sampler share it, as ``DataLoader(generator=g)`` does)."""
    sampler = _sampler(loader)
    if not isinstance(sampler, RandomSampler):
        return None
    if sampler.generator is None:
        sampler.generator = torch.Generator().manual_seed(seed)
        assert isinstance(loader, DataLoader)
        if loader.generator is None:
            loader.generator = sampler.generator
    return sampler.generator


def batch_source(
    train: object,
    batch_size: int,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
    where: str = "Trainer.fit(train=...)",
) -> tuple[BatchSource, tuple[Tensor, Tensor] | None]:
    """The source for `train`, and its (X, y) when they are held in memory (for fingerprints).

    Raises:
        TypeError: `train` is none of the accepted kinds (an iterator, which one epoch would
            exhaust, included).
    """
    if isinstance(train, Batches):
        X, y = to_device((train.X, train.y), device, dtype)
        batches = Batches(
            X,
            y,
            train.batch_size,
            shuffle=train.shuffle,
            seed=train.seed,
            drop_last=train.drop_last,
        )
        return InMemorySource(batches), (X, y)
    if isinstance(train, Dataset) or is_xy_pair(train):
        X, y = to_device(train, device, dtype)  # type: ignore[arg-type]
        return InMemorySource(Batches(X, y, batch_size, seed=seed)), (X, y)
    if _reiterable(train):
        assert isinstance(train, Iterable)
        return LoaderSource(train, device, dtype, seed, where), None
    got = (
        f"an iterator ({type(train).__name__}), which one epoch would exhaust"
        if isinstance(train, Iterator)
        else f"{type(train).__name__}"
    )
    raise InvalidParameterError(f"{where} must be {ACCEPTED}; got {got}.")


def in_memory(data: object) -> TypeGuard[DataLike]:
    return isinstance(data, Dataset) or is_xy_pair(data)


def check_source(data: object, where: str) -> None:
    """Raise the TypeError of :func:`batch_source` now for data used only later (val)."""
    if not (in_memory(data) or isinstance(data, Batches) or _reiterable(data)):
        batch_source(data, 1, 0, torch.device("cpu"), torch.float32, where)


def _reiterable(data: object) -> bool:
    return isinstance(data, Iterable) and not isinstance(data, Iterator | Tensor | str | bytes)


def eval_batches(
    data: object,
    batch_size: int,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
    where: str = "Trainer.evaluate(data=...)",
) -> Iterator[tuple[Tensor, Tensor]]:
    """`data` in order, in batches: slices of in-memory data, else the loader's own batches."""
    if in_memory(data):
        X, y = to_device(data, device, dtype)
        for i in range(0, len(X), batch_size):
            yield X[i : i + batch_size], y[i : i + batch_size]
    else:
        yield from batch_source(data, batch_size, seed, device, dtype, where)[0].epoch(0)
