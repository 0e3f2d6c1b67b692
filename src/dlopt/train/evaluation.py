"""Evaluation over a split, batch by batch: the mean loss, accuracy for classification, and the
requested metrics (see :mod:`dlopt.train.scores`) on the whole split's outputs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from dlopt.errors import InvalidParameterError
from dlopt.train.metrics import LossFn
from dlopt.train.scores import compute_metrics


@torch.no_grad()
def evaluate_batches(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    resolve: Callable[[Tensor], tuple[LossFn, bool]],
    metrics: Sequence[str] = (),
) -> dict[str, float]:
    """Metrics of `model` in eval mode; `resolve(target)` gives (loss, is classification)."""
    loss_fn: LossFn | None = None
    classification = False
    total, correct, count = 0.0, 0.0, 0
    outputs: list[Tensor] = []
    targets: list[Tensor] = []
    with eval_mode(model):
        for xb, yb in batches:
            if loss_fn is None:
                loss_fn, classification = resolve(yb)
            out = model(xb)
            total += float(loss_fn(out, yb)) * len(out)
            if classification:
                correct += float((out.argmax(-1) == yb).sum())
            count += len(out)
            if metrics:  # kept only when a metric needs the whole split
                outputs.append(out)
                targets.append(yb)
    if count == 0:
        raise InvalidParameterError("Trainer.evaluate(data=...) holds no samples.")
    scores = {"loss": total / count}
    if classification:
        scores["accuracy"] = correct / count
    if metrics:
        scores |= compute_metrics(metrics, torch.cat(outputs), torch.cat(targets), classification)
    return scores


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """`model` in eval mode inside the block; its own mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def predict_batches(model: nn.Module, X: Tensor, batch_size: int) -> Tensor:
    """`model`'s outputs for `X`, `batch_size` rows at a time, in eval mode."""
    with eval_mode(model):
        return torch.cat([model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])
