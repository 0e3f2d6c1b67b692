r"""Bagging (SPEC G2): member m trains on its own bootstrap resample — n indices drawn with
replacement, so about 1 − 1/e ≈ 63 % of the distinct samples, some repeated — and all members
train at once in a :class:`StackedEnsemble`. Minibatch Adam on the sum of the members' losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from dlopt._validation import check_positive_int
from dlopt.ensemble.stacked import StackedEnsemble
from dlopt.errors import InvalidParameterError
from dlopt.nn.losses import cross_entropy


def bootstrap_indices(n: int, members: int, generator: torch.Generator | None = None) -> Tensor:
    """members × n indices into n samples, drawn uniformly with replacement."""
    return torch.randint(0, n, (members, n), generator=generator)


@dataclass
class EnsembleHistory:
    loss: list[float] = field(default_factory=list)  # mean member loss per epoch


def fit_stacked(
    ensemble: StackedEnsemble,
    X: Tensor,
    y: Tensor,
    *,
    epochs: int = 50,
    batch_size: int = 64,
    lr: float = 1e-3,
    bootstrap: bool = True,
    seed: int = 0,
    indices: Tensor | None = None,
) -> EnsembleHistory:
    """Train every member at once on (X, y) with cross-entropy (integer y) or squared error.

    `indices` (members × n) fixes each member's training sample; otherwise it is a bootstrap
    resample (`bootstrap`) or the whole set. Each epoch visits each member's sample in its own
    random order, one stacked batch per step."""
    check_positive_int("epochs", epochs, caller="fit_stacked")
    check_positive_int("batch_size", batch_size, caller="fit_stacked")
    m, n = ensemble.members, len(X)
    if len(y) != n:
        raise InvalidParameterError(f"fit_stacked: X has {n} samples but y has {len(y)}.")
    generator = torch.Generator().manual_seed(seed)
    if indices is None:
        indices = (
            bootstrap_indices(n, m, generator)
            if bootstrap
            else torch.arange(n).expand(m, n).clone()
        )
    if indices.shape[0] != m:
        raise InvalidParameterError(f"fit_stacked(indices=...) needs one row per member ({m}).")
    device = ensemble.stacked[0].device
    X, y, indices = X.to(device), y.to(device), indices.to(device)
    classify = not torch.is_floating_point(y)
    params = list(ensemble.parameters())
    # one fused kernel per stacked tensor (torch's fused Adam: the same update as the loop)
    fused = device.type in ("cpu", "cuda") and all(p.is_floating_point() for p in params)
    optimizer = torch.optim.Adam(params, lr=lr, fused=fused or None)
    history = EnsembleHistory()
    ensemble.train()
    length = indices.shape[1]
    for _ in range(epochs):
        order = torch.argsort(torch.rand(m, length, generator=generator), dim=1).to(device)
        epoch_indices = torch.gather(indices, 1, order)
        total, batches = torch.zeros((), device=device), 0
        for start in range(0, length, batch_size):
            idx = epoch_indices[:, start : start + batch_size]  # members × B
            out = ensemble(X[idx], per_member=True)  # members × B × K
            target = y[idx]
            # each member's own mean loss, summed: every member has B samples in this batch
            if classify:
                loss = cross_entropy(out, target, reduction="sum")
            else:
                loss = ((out.squeeze(-1) - target) ** 2).sum()
            loss = loss / idx.shape[1]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            batches += 1
        history.loss.append(float(total) / (batches * m))  # one read per epoch
    ensemble.eval()
    return history
