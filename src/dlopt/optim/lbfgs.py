"""Limited-memory BFGS: the compact representation of the last m pairs (s, y), its small
algebra on the host. See :class:`LBFGS`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.linalg.lapack import dtrtri
from torch import Tensor

from dlopt.errors import InvalidParameterError
from dlopt.optim import placement
from dlopt.optim.directions import Method, StepInfo
from dlopt.optim.objective import Evaluation


class LBFGS(Method):
    r"""L-BFGS in the compact representation (Byrd, Nocedal & Schnabel 1994; N&W eq. 7.24):

    H g = γg + [S  γY] M [Sᵀg; γYᵀg],  M = [[R⁻ᵀ(D + γYᵀY)R⁻¹, −R⁻ᵀ], [−R⁻¹, 0]],

    with S, Y the last m pairs, R_ij = s_i·y_j where pair i is not newer than pair j (upper
    triangular in time order), D its diagonal and γ = sᵀy/yᵀy of the newest pair. Equal to
    the two-loop recursion. As in L-BFGS-B, the long vectors stay on the device and the small
    algebra runs on the host in float64. The pairs live in one ring buffer W = [S; Y]
    (2m × n); the small matrices are kept in the same ring order, so nothing is ever shifted
    or permuted. R⁻¹ is updated by bordering, O(m²) per pair: dropping the oldest pair drops
    its row and column of R⁻¹ (the inverse of a trailing block of a triangular matrix is that
    block of its inverse), and the new pair k with r_i = s_i·y_k, ρ = s_k·y_k brings column
    −R⁻¹r/ρ and diagonal 1/ρ — the column dtrtri itself would compute.

    An update only writes its pair; the next direction computes W[g y_k] in one pass over W
    and reads it in one transfer — p = Wg and the new pair's products W·y_k (W·s_k is not
    needed: s_k·y_j for older pairs j lies outside R) — then forms q = Mp and
    gᵀd = −γ‖g‖² − pᵀq on the host and d = −γg − Wᵀq on the device. Per iteration: two
    passes over W, six device operations and one host read, which replaces the read of gᵀd
    the other methods need. Unused slots hold zero pairs with a unit diagonal in R; they
    contribute nothing. On the CPU the device operations are numpy calls on W's memory
    (about 30 % less overhead per iteration than torch's, measured A/B in one process).
    """

    name = "lbfgs"
    numpy_on_host = True

    def __init__(self, history_size: int = 10) -> None:
        self.m = history_size
        self._upper = np.triu(np.ones((history_size, history_size)))
        self.reset()

    def reset(self) -> None:
        m = self.m
        self.W: Tensor | None = None  # [S; Y] on the device; rows k and m + k hold pair k
        self._host_W: np.ndarray | None = None
        # column j: W·y_j = [s_i·y_j; y_i·y_j] by ring slot (unused and dropped slots zero),
        # written in one assignment. SY holds s_i·y_j for pair i not newer than j (R and D);
        # its other entries are stale and never read.
        self._WY = np.zeros((2 * m, m))
        self.SY, self.YY = self._WY[:m], self._WY[m:]
        self.R_inv = np.eye(m)  # R⁻¹ by ring slot
        self._D = self.SY.diagonal()  # a view: follows SY
        self.count = 0
        self.gamma = 1.0
        self._pending: int | None = None  # ring slot of a pair whose products are not read

    def step_taken(self, d: Tensor, g_old: Tensor, g_new: Tensor, info: StepInfo) -> None:
        if info.curvature_ok:  # s = t·d and y = g_new − g_old, written straight into W
            slot = self._next_slot(d)
            if self._host_W is not None:  # numpy on the same memory: a third of torch's cost
                s, y = self._host_rows[slot]
                d_host, g_old_host, g_new_host = info.host or (
                    d.numpy(),
                    g_old.numpy(),
                    g_new.numpy(),
                )
                np.multiply(d_host, info.t, out=s)
                np.subtract(g_new_host, g_old_host, out=y)
                return
            _, s, y = self._views[slot]
            torch.mul(d, info.t, out=s)
            torch.sub(g_new, g_old, out=y)

    def _next_slot(self, like: Tensor) -> int:
        """The ring slot the next pair goes to, now marked pending."""
        if self.W is None:
            self._allocate(like.new_zeros(2 * self.m, like.numel()))
        self._read_pending()  # two updates with no direction between
        slot = self._pending = self.count % self.m
        self.count += 1
        return slot

    def _allocate(self, W: Tensor) -> None:
        """W and, per ring slot, views of its rows (s, y) made once: indexing a tensor from
        Python costs microseconds, and these are used every iteration."""
        self.W, m = W, self.m
        pairs = W.view(2, m, -1)
        self._views = [(pairs[:, j], W[j], W[m + j]) for j in range(m)]
        self._WT = W.T
        # on the CPU, W's memory seen by numpy: its calls cost about a microsecond where
        # torch's dispatcher costs three to five, and at small n that is the whole overhead
        self._host_W = W.numpy() if placement.on_host(W) else None
        if self._host_W is not None:
            self._host_rows = [(self._host_W[j], self._host_W[m + j]) for j in range(m)]

    def _pair(self, slot: int) -> Tensor:
        return self._views[slot][0]  # rows s, y of a ring slot, as a 2 × n view

    def _read_pending(self) -> None:
        if self._pending is not None:
            assert self.W is not None
            _, _, y = self._views[self._pending]
            self._absorb(self._pending, placement.to_host(torch.mv(self.W, y)))

    def _absorb(self, k: int, products: np.ndarray) -> None:
        """The new pair k's products W·y_k → its column of SY and YY (its row of YY), R⁻¹
        and γ. W·s_k is not needed: s_k·y_j for older pairs j lies outside R."""
        m, YY, R_inv = self.m, self.YY, self.R_inv
        self._pending = None
        sy, yy = float(products[k]), float(products[m + k])
        # the oldest pair leaves: its row of R⁻¹ goes (its column is zero but for the
        # diagonal, in that row), and the rest of R⁻¹ stands
        R_inv[k] = 0.0
        if sy > 0 and yy > 0 and math.isfinite(products.sum()):
            self._WY[:, k] = products
            YY[k] = products[m:]
            column = R_inv.dot(products[:m])  # row k is zero: R⁻¹r over the other pairs
            column *= -1.0 / sy
            column[k] = 1.0 / sy
            R_inv[:, k] = column
            self.gamma = sy / yy
        else:  # rounding broke yᵀs > 0, or overflow: drop the pair (a zero pair is unused)
            self._pair(k).zero_()
            self._WY[:, k] = YY[k] = 0.0
            R_inv[k, k] = 1.0  # its column: the unit diagonal of an unused pair

    def direction(self, g: Tensor, at: Evaluation, gg: float) -> tuple[Tensor, float | None]:
        if self.W is None:
            return -g, -gg
        # one errstate for the whole algebra (each costs ~2 µs): an overflow in the products
        # makes _absorb drop the pair, a non-finite gᵀd makes the solver restart along −g
        with np.errstate(all="ignore"):
            return self._direction(g, gg, None if at is None else at.g_host)

    def _direction(self, g: Tensor, gg: float, g_host: np.ndarray | None) -> tuple[Tensor, float]:
        slot, Wn = self._pending, self._host_W
        assert self.W is not None
        if Wn is not None:
            return self._direction_on_host(g if g_host is None else g_host, gg, Wn)
        if slot is None:
            p = placement.to_host(torch.mv(self.W, g))
        else:  # W[g y]: p and the new pair's products in one pass over W, one read
            both = placement.to_host(torch.mm(torch.stack([g, self._views[slot][2]]), self._WT))
            p = both[0]
            self._absorb(slot, both[1])
        minus_q, gtd = self._minus_q(p, gg)
        return torch.addmv(g, self._WT, placement.to_device(minus_q, g), beta=-self.gamma), gtd

    def _direction_on_host(
        self, g: Tensor | np.ndarray, gg: float, Wn: np.ndarray
    ) -> tuple[Tensor, float]:
        """The same on the CPU, in numpy on W's memory (g as a tensor or its numpy view)."""
        slot = self._pending
        g_host = g.numpy() if isinstance(g, Tensor) else g
        if slot is None:
            p = placement.as_float64(Wn.dot(g_host))
        else:
            both = placement.as_float64(np.array((g_host, self._host_rows[slot][1])).dot(Wn.T))
            p = both[0]
            self._absorb(slot, both[1])
        minus_q, gtd = self._minus_q(p, gg)
        d = minus_q.astype(Wn.dtype, copy=False).dot(Wn)  # d = −Wᵀq − γg
        d -= self.gamma * g_host
        return torch.from_numpy(d), gtd

    def _minus_q(self, p: np.ndarray, gg: float) -> tuple[np.ndarray, float]:
        """(−q, gᵀd) with Hg = γg + Wᵀq, q = M[Sᵀg; γYᵀg] over W's rows, from p = Wg."""
        m, R_inv, gamma = self.m, self.R_inv, self.gamma
        u = R_inv.dot(p[:m])  # R⁻¹Sᵀg (.dot: half the cost of @ on these sizes)
        w = p[m:] - self.YY.dot(u)
        w *= gamma
        w -= self._D * u  # −((D + γYᵀY)R⁻¹Sᵀg − γYᵀg)
        minus_q = np.empty(2 * m)
        np.dot(w, R_inv, out=minus_q[:m])  # S-coefficients, −R⁻ᵀ(…)
        np.multiply(u, gamma, out=minus_q[m:])  # Y-coefficients, −(−γR⁻¹Sᵀg)
        return minus_q, float(p.dot(minus_q)) - gamma * gg  # gᵀd = −pᵀq − γ‖g‖²

    def _time_order(self) -> tuple[np.ndarray, ...]:
        """Index of the m × m matrices with ring slots in time order, oldest first (the unused
        ones, then the pairs as they came): the state dict's order."""
        slots = (self.count + np.arange(self.m)) % self.m
        return np.ix_(slots, slots)

    def state_dict(self) -> dict[str, Any]:
        self._read_pending()  # fold the unread products in (one read, at save time)
        order = self._time_order()
        return {
            "W": self.W,
            "SY": torch.from_numpy(self.SY[order] * self._upper),  # time order, oldest first
            "YY": torch.from_numpy(self.YY[order]),
            # R⁻¹ as it was updated, so a reload continues bit for bit; a list of floats,
            # because torch.optim's load_state_dict casts tensors to the parameters' dtype
            "R_inv": self.R_inv[order].tolist(),
            "count": self.count,
            "gamma": self.gamma,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shape = (self.m, self.m)
        if tuple(state["YY"].shape) != shape:
            raise InvalidParameterError(
                f"this L-BFGS state holds {state['YY'].shape[0]} pairs, but history_size is "
                f"{self.m}; load it with history_size={state['YY'].shape[0]}."
            )
        self.reset()  # nothing pending, no stale view of an old W
        self.count, self.gamma = int(state["count"]), float(state["gamma"])
        SY = np.array(state["SY"].tolist(), dtype=np.float64).reshape(shape)
        YY = np.array(state["YY"].tolist(), dtype=np.float64).reshape(shape)
        order = self._time_order()
        self.SY[order], self.YY[order] = SY, YY
        if "R_inv" in state:
            self.R_inv[order] = np.array(state["R_inv"], dtype=np.float64).reshape(shape)
        else:  # a state dict without it: factor R afresh (equal up to rounding)
            R = SY * self._upper  # time order: upper triangular
            R.flat[:: self.m + 1] += R.diagonal() <= 0  # unused (or dropped) pairs: unit diagonal
            self.R_inv[order] = dtrtri(R, lower=0)[0]
        if state["W"] is not None:
            self._allocate(state["W"])
