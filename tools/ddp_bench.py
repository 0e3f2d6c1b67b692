"""Data-parallel throughput and second-order collectives, 1 vs N processes (gloo, CPU).

    PYTHONPATH=src python tools/ddp_bench.py            # the table (launches torchrun itself)
    PYTHONPATH=src python tools/ddp_bench.py --nproc 2 --threads 1

Throughput: samples per second of ``Trainer.fit`` (imports, data loading and process start not
counted) for the configs in examples/ (their epochs cut to --epochs, early stopping off), with
--threads torch threads per rank. Collectives: all-reduces per solver iteration and per
evaluation of dlopt's full-batch second-order optimizers on 2 ranks (digits, a 64-32-10 MLP).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "digits-mlp": ROOT / "examples/digits_mlp.toml",
    "mnist1d-cnn": ROOT / "examples/mnist1d_cnn.toml",
}


def _throughput(config_path: Path, epochs: int) -> dict[str, float]:
    import torch.distributed as dist

    from dlopt.lab.build import build_model, build_optimizer
    from dlopt.lab.config import load_config
    from dlopt.lab.run import load_splits
    from dlopt.train import Trainer
    from dlopt.train.distributed import DataParallel

    config = load_config(config_path)
    torch.manual_seed(config.seed)
    splits = load_splits(config)
    model = build_model(config, splits.train)
    parallel = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
        parallel = DataParallel()
    trainer = Trainer(
        model,
        build_optimizer(config.optimizer, model),
        max_epochs=epochs,
        batch_size=config.train.batch_size,
        seed=config.seed,
        distributed=parallel,
    )
    start = time.perf_counter()
    trainer.fit(splits.train)
    seconds = time.perf_counter() - start
    if parallel is not None:
        dist.barrier()
        seconds = time.perf_counter() - start
    return {"samples_per_s": epochs * len(splits.train) / seconds, "seconds": seconds}


def _collectives() -> dict[str, dict[str, float]]:
    import torch.distributed as dist

    from dlopt.data import load_bundled, split_dataset
    from dlopt.optim import BFGS, LBFGS, NewtonCG, NonlinearCG

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    train = split_dataset(load_bundled("digits"), seed=0, train_size=512).train
    X, y = train.X.double(), train.y
    index = torch.arange(len(y)).tensor_split(world)[rank]
    Xs, ys = X[index], y[index]
    table = {}
    for cls in (LBFGS, BFGS, NonlinearCG, NewtonCG):
        table[cls.__name__] = _one_step(cls, Xs, ys, len(y))
    return table


def _one_step(cls: type, Xs: torch.Tensor, ys: torch.Tensor, n: int) -> dict[str, float]:
    """One full-batch step (max_iter 20) of `cls` on this rank's shard; its counts."""
    from torch import nn

    from dlopt.optim import distributed_closure

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10)).double()
    optimizer = cls(model.parameters(), max_iter=20)
    backward = optimizer.closure_backward

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(Xs), ys)
        if backward:
            loss.backward()
        return loss

    wrapped = distributed_closure(optimizer, closure, weight=len(ys) / n)
    start = time.perf_counter()
    optimizer.step(wrapped)
    seconds = time.perf_counter() - start
    state = optimizer.state[next(model.parameters())]
    iterations = state["memory"]["nit"]
    return {
        "iterations": iterations,
        "evaluations": state["nfev"] + state["nhev"],
        "collectives": wrapped.collectives,
        "per_iteration": wrapped.collectives / max(iterations, 1),
        "seconds": seconds,
    }


def _launch(nproc: int, threads: int, *args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc-per-node={nproc}", __file__, "--worker", "--threads", str(threads), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    line = [x for x in done.stdout.splitlines() if x.startswith("{")][-1]
    return json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        torch.set_num_threads(args.threads)
        result = _throughput(Path(args.config), args.epochs) if args.config else _collectives()
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps(result))
        return
    print(f"throughput, samples/s of Trainer.fit ({args.threads} thread(s) per rank, gloo):")
    for name, path in CONFIGS.items():
        row = []
        for n in sorted({1, args.nproc}):
            r = _launch(n, args.threads, "--config", str(path), "--epochs", str(args.epochs))
            row.append(f"{n} rank(s) {r['samples_per_s']:9.0f}")
        print(f"  {name:<12} " + "   ".join(row))
    print(f"second-order, one step of max_iter 20 on {args.nproc} ranks (digits, 64-32-10):")
    for name, r in _launch(args.nproc, args.threads).items():
        print(
            f"  {name:<12} {r['iterations']:3d} iterations {r['evaluations']:4d} evaluations "
            f"{r['collectives']:4d} all-reduces = {r['per_iteration']:.2f} per iteration"
        )


if __name__ == "__main__":
    main()
