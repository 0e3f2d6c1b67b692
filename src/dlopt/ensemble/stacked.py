r"""Members that share an architecture, trained in parallel in one batched computation
(SPEC G4): their parameters are stacked (``torch.func.stack_module_state``), and one
``vmap``-ed ``functional_call`` runs every member on its own batch — one forward and one
backward for the whole ensemble instead of M. The loss is the sum of the members' losses, so
each member's gradient is its own; Adam's per-coordinate update then equals M separate Adams.

Members that are plain stacks — an ``nn.Sequential`` of Linear layers, ``Flatten``, and
element-wise stateless layers (activations, dropout, Gaussian noise) — skip vmap: each Linear
becomes one batched matrix product over the stacked weights, h ← baddbmm(b, h, Wᵀ) with
h: M × B × in, W: M × out × in, b: M × 1 × out (for a shared first input, one gemm against the
M weights side by side). The arithmetic per member is the Linear's own, so results equal
vmap's to rounding, with one kernel per layer instead of vmap's per-call dispatch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

from dlopt._validation import check_positive_int
from dlopt.errors import InvalidParameterError
from dlopt.nn.activations import Step
from dlopt.nn.dropout import Dropout, GaussianNoise

# layers that act on each element alone and hold no state: the same on M × B × F as on B × F
_ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.Identity,
    Step,
    nn.Sigmoid,
    nn.Tanh,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Softplus,
    nn.SELU,
    nn.Dropout,
    Dropout,
    GaussianNoise,
)


def _fused_plan(base: nn.Module, names: list[str]) -> list[tuple[str, nn.Module, list[int]]] | None:
    """(kind, layer, positions of its parameters in `names`) for each layer of a plain stack,
    or None when vmap must run the members: kind is "linear", "flatten" or "elementwise"
    (see the module docstring)."""
    if type(base) is not nn.Sequential:
        return None
    plan: list[tuple[str, nn.Module, list[int]]] = []
    for name, layer in base.named_children():
        keys = [f"{name}.{key}" for key, _ in layer.named_parameters()]
        if not all(key in names for key in keys):
            return None
        if type(layer) is nn.Linear:
            plan.append(("linear", layer, [names.index(key) for key in keys]))
        elif type(layer) is nn.Flatten and (layer.start_dim, layer.end_dim) == (1, -1):
            plan.append(("flatten", layer, []))
        elif type(layer) in _ELEMENTWISE and not keys:
            plan.append(("elementwise", layer, []))
        else:
            return None
    return plan


class StackedEnsemble(nn.Module):
    """M members built by `make()` (each with its own initial values), stacked.

    ``forward(x)`` runs every member on the same x → M × N × K; ``forward(xs, per_member=True)``
    runs member m on xs[m] (M × N × ...), as bagging needs. Members may use dropout (each draws
    its own mask); BatchNorm is refused (running statistics cannot be updated under vmap).
    Plain Linear stacks run as batched matrix products (see the module docstring) unless
    ``fused=False``, which keeps vmap for every architecture.

    >>> import torch
    >>> ensemble = StackedEnsemble(lambda: torch.nn.Linear(4, 3), members=5)
    >>> ensemble(torch.randn(8, 4)).shape
    torch.Size([5, 8, 3])
    """

    def __init__(self, make: Callable[[], nn.Module], members: int, *, fused: bool = True) -> None:
        super().__init__()
        self.members = check_positive_int("members", members, caller="StackedEnsemble")
        models = [make() for _ in range(self.members)]
        for m in models[0].modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                raise InvalidParameterError(
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
        self._plan = _fused_plan(self._base[0], self._names) if fused else None

    def _params(self) -> dict[str, Tensor]:
        return dict(zip(self._names, self.stacked, strict=True))

    def _stacked_buffers(self) -> dict[str, Tensor]:
        return {
            name: getattr(self, f"stacked_buffer{i}") for i, name in enumerate(self._buffer_names)
        }

    def forward(self, x: Tensor, per_member: bool = False) -> Tensor:
        base = self._base[0]
        base.train(self.training)
        if self._plan is not None:
            return self._fused_forward(x, per_member)

        def one(params: dict[str, Tensor], buffers: dict[str, Tensor], xm: Tensor) -> Tensor:
            return functional_call(base, (params, buffers), (xm,))

        call = torch.vmap(one, in_dims=(0, 0, 0 if per_member else None), randomness="different")
        return call(self._params(), self._stacked_buffers(), x)

    def _fused_forward(self, x: Tensor, per_member: bool) -> Tensor:
        assert self._plan is not None
        h, shared = x, not per_member  # h: B × ... (shared) or M × B × ...
        for kind, layer, positions in self._plan:
            if kind == "flatten":
                h = h.flatten(1 if shared else 2)
            elif kind == "elementwise":
                if shared:  # each member draws its own dropout mask or noise
                    h = h.expand(self.members, *h.shape)
                    shared = False
                h = layer(h)
            else:
                weight = self.stacked[positions[0]]  # M × out × in
                bias = self.stacked[positions[1]] if len(positions) > 1 else None  # M × out
                m, out = weight.shape[:2]
                lead = h.shape[:-1] if shared else h.shape[1:-1]  # B, or B × T × … (Linear's)
                if shared:  # (B·…) × in against all M weights at once: (B·…) × M·out
                    h = h.reshape(-1, h.shape[-1]) @ weight.reshape(m * out, -1).T
                    h = h.view(-1, m, out).transpose(0, 1)
                    h = h if bias is None else h + bias[:, None, :]
                    shared = False
                else:
                    h = h.reshape(m, -1, h.shape[-1])
                    if bias is None:
                        h = torch.bmm(h, weight.transpose(1, 2))
                    else:
                        h = torch.baddbmm(bias[:, None, :], h, weight.transpose(1, 2))
                h = h.view(m, *lead, out)
        return h.expand(self.members, *h.shape) if shared else h

    @torch.no_grad()
    def member(self, i: int) -> nn.Module:
        """Member i as a standalone module (for inspection or export): the architecture kept
        without storage, given member i's parameters and buffers."""
        device = self.stacked[0].device
        model = copy.deepcopy(self._base[0]).to_empty(device=device)
        state = {name: p[i].clone() for name, p in self._params().items()}
        state.update({name: b[i].clone() for name, b in self._stacked_buffers().items()})
        model.load_state_dict(state, assign=True)  # the stacked dtype, not the base's
        return model.train(self.training)
