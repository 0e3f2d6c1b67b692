r"""Members that share an architecture, trained in parallel in one batched computation
(SPEC G4): their parameters are stacked (``torch.func.stack_module_state``), and one
``vmap``-ed ``functional_call`` runs every member on its own batch — one forward and one
backward for the whole ensemble instead of M. The loss is the sum of the members' losses, so
each member's gradient is its own; Adam's per-coordinate update then equals M separate Adams.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

from dlopt._validation import check_positive_int


class StackedEnsemble(nn.Module):
    """M members built by `make()` (each with its own initial values), stacked.

    ``forward(x)`` runs every member on the same x → M × N × K; ``forward(xs, per_member=True)``
    runs member m on xs[m] (M × N × ...), as bagging needs. Members may use dropout (each draws
    its own mask); BatchNorm is refused (running statistics cannot be updated under vmap).

    >>> import torch
    >>> ensemble = StackedEnsemble(lambda: torch.nn.Linear(4, 3), members=5)
    >>> ensemble(torch.randn(8, 4)).shape
    torch.Size([5, 8, 3])
    """

    def __init__(self, make: Callable[[], nn.Module], members: int) -> None:
        super().__init__()
        self.members = check_positive_int("members", members, caller="StackedEnsemble")
        models = [make() for _ in range(self.members)]
        for m in models[0].modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                raise ValueError(
                    "StackedEnsemble: members with BatchNorm cannot train under vmap (their "
                    "running statistics); use LayerNorm, or train the members one by one."
                )
        params, buffers = stack_module_state(models)
        self._names, self._buffer_names = list(params), list(buffers)
        self.stacked = nn.ParameterList(nn.Parameter(params[name]) for name in self._names)
        for i, name in enumerate(self._buffer_names):  # registered: .to() and state_dict see them
            self.register_buffer(f"stacked_buffer{i}", buffers[name])
        # the architecture without storage, kept out of the module tree (.to() must not move it)
        self._base = (copy.deepcopy(models[0]).to("meta"),)

    def _params(self) -> dict[str, Tensor]:
        return dict(zip(self._names, self.stacked, strict=True))

    def _stacked_buffers(self) -> dict[str, Tensor]:
        return {
            name: getattr(self, f"stacked_buffer{i}") for i, name in enumerate(self._buffer_names)
        }

    def forward(self, x: Tensor, per_member: bool = False) -> Tensor:
        base = self._base[0]
        base.train(self.training)

        def one(params: dict[str, Tensor], buffers: dict[str, Tensor], xm: Tensor) -> Tensor:
            return functional_call(base, (params, buffers), (xm,))

        call = torch.vmap(one, in_dims=(0, 0, 0 if per_member else None), randomness="different")
        return call(self._params(), self._stacked_buffers(), x)

    @torch.no_grad()
    def member(self, i: int) -> nn.Module:
        """Member i as a standalone module (for inspection or export): the architecture kept
        without storage, given member i's parameters and buffers."""
        device = self.stacked[0].device
        model = copy.deepcopy(self._base[0]).to_empty(device=device)
        state = {name: p[i].clone() for name, p in self._params().items()}
        state.update({name: b[i].clone() for name, b in self._stacked_buffers().items()})
        model.load_state_dict(state)
        return model.train(self.training)
