"""Small, fast training problems shared by the trainer and reliability tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dlopt.data import load_bundled, split_dataset
from dlopt.nn import mlp


class NoisyInput(nn.Module):
    """Stochastic augmentation inside the model: Gaussian input noise while training."""

    def __init__(self, std: float = 0.1) -> None:
        super().__init__()
        self.std = std

    def forward(self, x: Tensor) -> Tensor:
        return x + self.std * torch.randn_like(x) if self.training else x


def digits_small(n_train: int = 256, seed: int = 0):
    splits = split_dataset(load_bundled("digits"), seed=seed, train_size=n_train)
    return splits


def stochastic_model(seed: int = 0) -> nn.Module:
    """Dropout + BatchNorm + input noise: every source of randomness and every kind of buffer."""
    torch.manual_seed(seed)
    return nn.Sequential(NoisyInput(0.1), mlp(64, 10, (32,), batch_norm=True, dropout=0.3))
