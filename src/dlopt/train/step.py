"""One first-order step of the Trainer — zero_grad, forward, backward, NaN guard, clipping,
step — and its pieces: mixed precision, the guard's gradient check, gradient-norm clipping,
the seeded augmentation of a batch. (The closure step is :mod:`dlopt.train.closure`.)"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from dlopt._validation import check_finite_number
from dlopt.errors import InvalidParameterError

if TYPE_CHECKING:
    from dlopt.train.trainer import Trainer


class Precision:
    """``torch.autocast`` around the forward pass and the loss: bfloat16 on CPU; float16 with a
    ``torch.amp.GradScaler`` on CUDA, whose loss scaling keeps small float16 gradients from
    flushing to zero (and skips a step whose scaled gradients overflowed).

    Disabled, every method is the plain float32 step.
    """

    def __init__(self, enabled: bool, device: torch.device) -> None:
        self.enabled = enabled
        self.device_type = device.type
        self.dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda") if enabled and device.type == "cuda" else None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring the gradients back to their true scale (before clipping or checking them)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def check_max_norm(max_norm: float | None) -> float | None:
    """`Trainer(clip_grad_norm=...)`: None, or a finite number > 0."""
    if max_norm is None:
        return None
    return check_finite_number("clip_grad_norm", max_norm, caller="Trainer", positive=True)


class GradientCheck:
    """Are all gradients finite? One fused kernel and one scalar read, no per-gradient sync.

    The gradients go through the kernel behind ``torch.amp.GradScaler`` (scale 1 leaves them
    bit-identical): ~10 µs per step on CPU, where an inf-norm per gradient costs ~200 µs.
    """

    def __init__(self) -> None:
        self._buffers: tuple[Tensor, Tensor] | None = None  # (found flag, scale 1)

    def __call__(self, params: Sequence[Tensor]) -> bool:
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return True
        device = grads[0].device
        if self._buffers is None or self._buffers[0].device != device:
            self._buffers = (torch.zeros(1, device=device), torch.ones(1, device=device))
        found, unit_scale = self._buffers
        found.zero_()
        try:
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found, unit_scale)
        except RuntimeError:  # grads on several devices, sparse grads: the portable way
            found = torch.stack([g.sum().to(device) for g in grads]).sum().isfinite().logical_not()
        return found.item() == 0


def divergence(model: nn.Module, loss: Tensor, epoch: int, step: int) -> str:
    """Why the NaN guard stopped the run at (0-based) `epoch` and `step`: the loss, or the
    first parameter whose gradient is not finite."""
    where = f"at epoch {epoch + 1} step {step + 1}"
    value = float(loss.detach()) if loss.numel() == 1 else math.nan
    if not math.isfinite(value):
        what = f"loss became {'NaN' if math.isnan(value) else 'inf'} {where}"
    else:
        names = [
            n
            for n, p in model.named_parameters()
            if p.grad is not None and not bool(p.grad.isfinite().all())
        ]
        what = f"gradient of {names[0] if names else 'a parameter'} became non-finite {where}"
    return what + "; parameters kept from the last finite step"


def regularized(trainer: Trainer, loss: Tensor) -> Tensor:
    """J + λR: the penalties' coupled terms join the loss before backward."""
    for penalty in trainer.penalties:
        term = penalty.term()
        if term is not None:
            loss = loss + term
    return loss


def guard_finite(trainer: Trainer, loss: Tensor, grads: bool = True) -> bool:
    """The NaN guard: are the loss and (with `grads`) every gradient finite — on every rank,
    when distributed? Two scalar reads; the loss is kept as the step's logged value."""
    trainer._last_loss = value = loss.item()
    finite = math.isfinite(value) and (not grads or trainer._grads_finite(trainer._params))
    return finite if trainer.distributed is None else trainer.distributed.agree(trainer, finite)


def diverge(trainer: Trainer, loss: Tensor) -> None:
    """Stop the run as diverged, saying which of loss and gradients became non-finite."""
    state = trainer.state
    state.diverged = True
    trainer.request_stop(divergence(trainer.model, loss, state.epoch, state.step))


def check_augment(augment: Any) -> Any:
    if augment is not None and not callable(augment):
        raise InvalidParameterError(
            f"Trainer(augment=...) must be callable as aug(x, generator); got {augment!r}."
        )
    return augment


def gradient_step(trainer: Trainer, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
    """zero_grad, forward, backward, guard, clip, step; returns (data loss, output)."""
    optimizer, precision = trainer.optimizer, trainer._precision
    optimizer.zero_grad(set_to_none=True)
    with precision.autocast():
        out = trainer._forward(xb)
        loss = trainer._loss_fn(out, yb)
    objective = regularized(trainer, loss)
    precision.backward(objective)
    precision.unscale(optimizer)
    if trainer.nan_guard:
        # with a GradScaler, overflowing float16 gradients are its to skip, not divergence
        if not guard_finite(trainer, objective, grads=precision.scaler is None):
            diverge(trainer, objective)
            return loss, out
        if trainer.penalties:
            trainer._last_loss = loss.item()  # log the data loss, not J + λR
    if trainer.clip_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(trainer._params, trainer.clip_grad_norm)
    for penalty in trainer.penalties:
        penalty.before_step()
    precision.step(optimizer)
    return loss, out


def augment_batch(trainer: Trainer, xb: Tensor) -> Tensor:
    """`trainer.augment` of a training batch, its generator seeded from (seed, step) so a
    resumed run draws the same augmentations."""
    assert trainer.augment is not None
    generator = trainer._augment_generator
    if generator is None or generator.device != xb.device:  # one per run, reseeded below
        generator = trainer._augment_generator = torch.Generator(device=xb.device)
    rank = trainer.distributed.rank if trainer.distributed is not None else 0  # its own draws
    generator.manual_seed(
        (trainer.seed * 1_000_003 + trainer.state.step + (rank << 53)) % (1 << 64)
    )
    out = trainer.augment(xb, generator)
    if not isinstance(out, Tensor) or out.shape != xb.shape:
        raise InvalidParameterError(
            f"Trainer(augment=...) must return a batch of the inputs' shape "
            f"{tuple(xb.shape)}; got "
            + (f"{tuple(out.shape)}." if isinstance(out, Tensor) else f"{type(out).__name__}.")
        )
    return out
