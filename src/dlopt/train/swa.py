"""Stochastic weight averaging (Izmailov et al. 2018) with ``torch.optim.swa_utils``.

From epoch `start` on (0-based, counting completed epochs), each epoch ends with the weights
added to an equal-weight running average (``AveragedModel``) and an ``SWALR`` step instead of
the trainer's own scheduler: torch's recipe, epoch for epoch. When the run finishes, the model
takes the averaged weights and its BN layers get statistics recomputed over the whole training
set by :func:`dlopt.nn.recalibrate_batchnorm` (``mode="exact"``: the mean and unbiased variance
of every BN input over every sample, where ``swa_utils.update_bn`` averages batch moments).
Validation metrics during the run are the trained model's, not the running average's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import SWALR, AveragedModel

from dlopt._validation import check_choice, check_finite_number, check_positive_int
from dlopt.errors import InvalidParameterError
from dlopt.nn.normalization import recalibrate_batchnorm
from dlopt.train.callbacks import Callback, EarlyStopping

_ANNEAL = {"cos": 0, "linear": 1}


class SWA:
    """Pass as ``Trainer(swa=SWA(lr, start=...))``; see the module docstring.

    Args:
        lr: The SWA learning rate SWALR anneals to.
        start: Completed epochs before averaging begins (the first average is taken at the end
            of epoch ``start + 1``).
        anneal_epochs: SWALR's annealing length, in epochs.
        anneal_strategy: ``"cos"`` or ``"linear"``.
        bn_mode: How BN statistics are recomputed at the end: ``"exact"`` or
            ``"batch_average"`` (see :func:`dlopt.nn.recalibrate_batchnorm`).
    """

    def __init__(
        self,
        lr: float,
        *,
        start: int,
        anneal_epochs: int = 1,
        anneal_strategy: str = "cos",
        bn_mode: str = "exact",
    ) -> None:
        self.lr = check_finite_number("lr", lr, caller="SWA", positive=True)
        self.start = check_positive_int("start", start, caller="SWA", minimum=0)
        self.anneal_epochs = check_positive_int(
            "anneal_epochs", anneal_epochs, caller="SWA", minimum=0
        )
        check_choice("anneal_strategy", anneal_strategy, _ANNEAL, caller="SWA")
        check_choice("bn_mode", bn_mode, {"exact": 0, "batch_average": 1}, caller="SWA")
        self.anneal_strategy, self.bn_mode = anneal_strategy, bn_mode
        self.averaged: AveragedModel | None = None
        self.scheduler: SWALR | None = None

    def bind(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        """Create the average and SWALR (which records ``swa_lr`` in the optimizer's groups).

        Raises:
            ValueError: an EarlyStopping among `callbacks` would restore other weights.
        """
        if any(isinstance(cb, EarlyStopping) and cb.restore_best_weights for cb in callbacks):
            raise InvalidParameterError(
                "Trainer(swa=...) ends with the averaged weights, which "
                "EarlyStopping(restore_best_weights=True) would replace; pass "
                "restore_best_weights=False."
            )
        self.averaged = AveragedModel(model)
        self.scheduler = SWALR(
            optimizer,
            swa_lr=self.lr,
            anneal_epochs=self.anneal_epochs,
            anneal_strategy=self.anneal_strategy,  # type: ignore[arg-type]
        )

    def active(self, completed_epoch: int) -> bool:
        """Does the epoch with 0-based index `completed_epoch` end with an SWA step?"""
        return completed_epoch >= self.start

    def epoch_end(self, model: nn.Module) -> None:
        assert self.averaged is not None and self.scheduler is not None, "bind() first"
        self.averaged.update_parameters(model)
        self.scheduler.step()

    @torch.no_grad()
    def finish(self, model: nn.Module, inputs: Iterable[Tensor]) -> None:
        """Give `model` the averaged weights and recompute its BN statistics over `inputs`."""
        assert self.averaged is not None
        if int(self.averaged.n_averaged) == 0:
            return  # the run ended before averaging began: the model stays as trained
        for ours, averaged in zip(
            model.parameters(), self.averaged.module.parameters(), strict=True
        ):
            ours.copy_(averaged)
        recalibrate_batchnorm(model, inputs, mode=self.bn_mode)

    def state_dict(self) -> dict[str, Any]:
        if self.averaged is None or self.scheduler is None:
            return {}  # not bound to a run yet
        return {"averaged": self.averaged.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self.averaged is not None and self.scheduler is not None, "bind() first"
        self.averaged.load_state_dict(state["averaged"])
        self.scheduler.load_state_dict(state["scheduler"])


def check_swa(swa: Any) -> SWA | None:
    if swa is not None and not isinstance(swa, SWA):
        raise InvalidParameterError(
            f"Trainer(swa=...) must be a dlopt.train.SWA or None; got {swa!r}."
        )
    return swa
