"""N ranks on N shards of a full batch take the single-process steps (float64, to 1e-8)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dlopt.optim import BFGS, LBFGS, NewtonCG, NonlinearCG, distributed_closure

f64 = torch.float64

OPTIMIZERS = {"LBFGS": LBFGS, "BFGS": BFGS, "NonlinearCG": NonlinearCG, "NewtonCG": NewtonCG}
STEPS = 2


def _problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    X = torch.randn(101, 6, dtype=torch.float64)  # 101: shards of 51 and 50, unequal weights
    y = (X[:, 0] - X[:, 1] > 0).long() + (X[:, 2] > 0.5).long()
    model = nn.Sequential(nn.Linear(6, 8, dtype=f64), nn.Tanh(), nn.Linear(8, 3, dtype=f64))
    return model, X, y


def _run(name: str, shard: tuple[int, int] | None) -> dict[str, Any]:
    """STEPS steps of `name` (max_iter 4 each): the iterates and collectives per step."""
    model, X, y = _problem()
    if shard is not None:
        rank, world = shard
        index = torch.arange(len(X)).tensor_split(world)[rank]
        Xs, ys = X[index], y[index]
    else:
        Xs, ys = X, y
    optimizer = OPTIMIZERS[name](model.parameters(), max_iter=4)
    backward = optimizer.step_policy.closure_backward

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(Xs), ys)
        if backward:
            loss.backward()
        return loss

    iterates, collectives, evaluations = [], [], []
    for _ in range(STEPS):
        before = optimizer.state[optimizer.param_groups[0]["params"][0]].get("nfev", 0)
        before_h = optimizer.state[optimizer.param_groups[0]["params"][0]].get("nhev", 0)
        if shard is None:
            optimizer.step(closure)
            collectives.append(0)
        else:
            wrapped = distributed_closure(optimizer, closure, weight=len(ys) / len(y))
            optimizer.step(wrapped)
            collectives.append(wrapped.collectives)
        state = optimizer.state[optimizer.param_groups[0]["params"][0]]
        evaluations.append(state["nfev"] - before + state["nhev"] - before_h)
        iterates.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    return {"iterates": iterates, "collectives": collectives, "evaluations": evaluations}


def on_each_rank(rank: int, world: int) -> dict[str, Any]:
    return {name: _run(name, (rank, world)) for name in OPTIMIZERS}


def test_second_order_steps_match_one_process(spawned: list[dict[str, Any]]) -> None:
    ranks = [r["second_order"] for r in spawned]
    for name in OPTIMIZERS:
        single = _run(name, None)
        for r, result in enumerate(ranks):
            for step, (ours, theirs) in enumerate(
                zip(result[name]["iterates"], single["iterates"], strict=True)
            ):
                torch.testing.assert_close(
                    ours, theirs, rtol=0, atol=1e-8, msg=f"{name} rank {r} step {step}"
                )
            # one all_reduce per evaluation (f+∇f, or Hv), never more
            assert result[name]["collectives"] == result[name]["evaluations"], name
        assert torch.equal(ranks[0][name]["iterates"][-1], ranks[1][name]["iterates"][-1])
