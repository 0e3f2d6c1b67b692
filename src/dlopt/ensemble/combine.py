"""Combining members' outputs (SPEC G1): the model average and the vote.

Members may differ in architecture, initial values or hyper-parameters; all that is combined is
their outputs, stacked as M × N × K (member, sample, class or output)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dlopt.errors import InvalidParameterError


@torch.no_grad()
def member_outputs(models: Sequence[nn.Module], x: Tensor) -> Tensor:
    """M × N × K: each member's output on `x`, in eval mode (each restored afterwards)."""
    if not models:
        raise InvalidParameterError(
            "member_outputs(models=...) is empty: an ensemble needs members."
        )
    outputs = []
    for model in models:
        was_training = model.training
        model.eval()
        try:
            outputs.append(model(x))
        finally:
            model.train(was_training)
    return torch.stack(outputs)


def average(outputs: Tensor, *, probabilities: bool = True) -> Tensor:
    """The model average: the mean over members of softmax(logits) (`probabilities`, for
    classifiers) or of the raw outputs (regression)."""
    _check(outputs, "average")
    return (outputs.softmax(-1) if probabilities else outputs).mean(0)


def vote(outputs: Tensor) -> Tensor:
    """The plurality vote of the members' predicted classes; ties go to the class with the
    higher mean probability."""
    _check(outputs, "vote")
    k = outputs.shape[-1]
    votes = torch.nn.functional.one_hot(outputs.argmax(-1), k).sum(0).to(outputs.dtype)
    return (votes + outputs.softmax(-1).mean(0) / 2).argmax(-1)  # a mean probability is < 1


def _check(outputs: Tensor, caller: str) -> None:
    if outputs.dim() != 3:
        raise InvalidParameterError(
            f"{caller}(outputs=...) must be members × samples × outputs; got shape "
            f"{tuple(outputs.shape)}."
        )
