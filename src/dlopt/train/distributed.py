"""Data-parallel training over torch.distributed: what the Trainer does on each of N ranks.

Each rank holds the whole (seeded, in-memory) training set and walks the single-process global
batch order; from every global batch of B samples it takes its contiguous shard (sizes differ by
at most one). The model trains wrapped in ``DistributedDataParallel`` (gloo on CPU, NCCL on
CUDA), whose gradient all-reduce is weighted by each shard's share n_r / B, so N ranks with
B / N samples each take the steps one process takes with batch B, the last, short batch
included. Closure-based optimizers skip DDP and go through
:func:`dlopt.optim.distributed_closure` (one all-reduce per evaluation).

Decisions are collective: the NaN guard's verdict and a pending SIGINT/SIGTERM travel in one
tiny all-reduce per step (a signal to any rank stops every rank at the same step, with one
checkpoint), and ``should_stop`` is all-reduced after every epoch (early stopping). The epoch's
loss and accuracy are summed over the ranks. Each rank draws its own dropout/noise masks
(:func:`rank_seed`) and augmentations (seeded with its rank). Only rank 0 writes files; see
:func:`dlopt.lab.run.train_run`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dlopt._processes import die_with_parent
from dlopt.data.batching import Batches
from dlopt.errors import InvalidParameterError
from dlopt.optim.distributed import DistributedClosure, distributed_closure
from dlopt.train.callbacks import Callback
from dlopt.train.signals import catching
from dlopt.train.totals import EpochTotals

if TYPE_CHECKING:
    from dlopt.train.trainer import Trainer


def world_from_env() -> int:
    """The number of processes torchrun started (WORLD_SIZE), 1 outside torchrun."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def init_process_group(device: torch.device) -> torch.device:
    """Join torchrun's process group (env://): NCCL on CUDA, gloo on CPU; return this rank's
    device (``cuda:LOCAL_RANK`` on CUDA)."""
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if "TORCHELASTIC_RUN_ID" in os.environ:
        # a torchrun worker ends with its agent, even a SIGKILLed one: the agent starts each
        # worker in a session of its own, out of reach of a kill of the agent's process
        # group, and an orphaned pair of workers would train on and hold the run folder
        die_with_parent(os.getppid())
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


class ShardedBatches:
    """This rank's shards of the global batches of `batches` (see the module docstring)."""

    def __init__(self, batches: Batches, owner: DataParallel) -> None:
        self.batches, self.owner = batches, owner
        self.X, self.y = batches.X, batches.y
        self.batch_size = batches.batch_size
        world, n, size = owner.world_size, len(batches.X), batches.batch_size
        last = n - (len(batches) - 1) * size if not batches.drop_last else size
        if min(size, last) < world:
            raise InvalidParameterError(
                f"training on {world} processes needs every batch to hold at least {world} "
                f"samples (one per rank); got batch_size {size} and a last batch of {last} "
                f"from {n} samples: raise [train] batch_size or use fewer processes."
            )

    def __len__(self) -> int:
        return len(self.batches)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        rank, world = self.owner.rank, self.owner.world_size
        for batch, (xb, yb) in enumerate(self.batches.epoch(epoch, start), start):
            index = torch.arange(len(yb), device=yb.device).tensor_split(world)[rank]
            self.owner.weight = len(index) / len(yb)
            torch.manual_seed(rank_seed(self.owner.seed, rank, epoch, batch))
            yield xb[index[0] : index[-1] + 1], yb[index[0] : index[-1] + 1]


def rank_seed(seed: int, rank: int, epoch: int, batch: int) -> int:
    """The global RNG's seed for one rank's step: dropout and noise masks are each rank's own
    and depend on nothing but the position in the run, so a resume draws them again exactly
    (no per-rank generator state to checkpoint). They are not the single-process draws."""
    return (((seed * 1_000_003 + epoch) * 1_000_033 + batch) * 1_009 + rank) % (1 << 63)


class DataParallel(Callback):
    """The Trainer's hooks for training on every rank of the default process group.

    Give it to ``Trainer(distributed=...)``; the Trainer adds it to its callbacks, and its
    checkpoints record the world size (a resume with another is refused). `checkpoint_every_steps` must be the
    :class:`~dlopt.train.checkpoint.Checkpoint`'s `every_steps`: before a mid-epoch checkpoint
    the epoch's partial sums are gathered on rank 0, so a resumed run logs the same loss.
    """

    order = 50  # after EarlyStopping and the rest have decided, before Checkpoint saves

    def __init__(self, *, checkpoint_every_steps: int = 0, group: Any = None) -> None:
        if not dist.is_initialized():
            raise RuntimeError(
                "DataParallel() needs torch.distributed initialized (run under torchrun, or "
                "call torch.distributed.init_process_group); got none."
            )
        self.group = group
        self.rank, self.world_size = dist.get_rank(group), dist.get_world_size(group)
        self.checkpoint_every_steps = checkpoint_every_steps
        self.weight = 1.0 / self.world_size  # this rank's share of the current global batch
        self.collectives = 0  # of its own (DDP's gradient buckets and closures' not counted)
        self._ddp: nn.Module | None = None
        self._pending: int | None = None  # a signal this rank received, not yet agreed
        self.seed = 0  # the Trainer's, set when a fit starts (per-rank dropout seeds)

    # ----------------------------------------------------------------- Trainer hooks
    def shard(self, batches: Batches) -> ShardedBatches:
        return ShardedBatches(batches, self)

    def train_model(self, model: nn.Module) -> nn.Module:
        """`model` in DistributedDataParallel, its all-reduce weighted by the shard's share."""
        if self._ddp is None or self._ddp.module is not model:
            on_cuda = next(model.parameters()).device.type == "cuda"
            device = [next(model.parameters()).device] if on_cuda else None
            ddp = nn.parallel.DistributedDataParallel(
                model, device_ids=device, process_group=self.group
            )
            ddp.register_comm_hook(self, _weighted_all_reduce)
            self._ddp = ddp
        return self._ddp

    def closure(
        self, optimizer: torch.optim.Optimizer, closure: Callable[[], Any]
    ) -> DistributedClosure:
        return distributed_closure(optimizer, closure, weight=self.weight, group=self.group)

    def agree(self, trainer: Trainer, finite: bool) -> bool:
        """Are the loss and gradients finite on every rank? A signal pending on any rank
        becomes every rank's ``trainer._signals.caught`` here, at the same step."""
        device = trainer._device_dtype()[0]
        flags = torch.tensor([int(not finite), self._pending or 0], device=device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.group)
        self.collectives += 1
        nonfinite, signum = (int(v) for v in flags.tolist())
        if signum and trainer._signals.caught is None:
            trainer._signals.caught = signum
        return not nonfinite

    def reduce_accumulators(self, trainer: Trainer, *, onto_rank0: bool = False) -> None:
        """Sum the epoch's loss, accuracy and sample counts over the ranks (every rank gets
        the sums; with `onto_rank0` only rank 0 keeps them and the others restart from 0)."""
        totals = trainer.totals
        device = totals.loss_sum.device
        sums = torch.stack(
            [
                totals.loss_sum + totals.host,
                totals.correct.to(torch.float64),
                torch.tensor(float(totals.seen), dtype=torch.float64, device=device),
            ]
        )
        dist.all_reduce(sums, group=self.group)
        self.collectives += 1
        if not onto_rank0 or self.rank == 0:
            trainer.totals = EpochTotals(sums[0].clone(), sums[1].round().long(), 0.0, int(sums[2]))
        else:
            trainer.totals = EpochTotals.zeros(device)

    def leave_together(self) -> None:
        """A barrier at the end of a run: no rank leaves (and tears its connections down)
        while another still evaluates and writes. Without it rank 1 left as soon as training
        ended, and in about one full test run in five it then aborted in gloo at exit
        ("terminate called without an active exception"), which torchrun reports as a failed
        run."""
        dist.barrier(group=self.group)

    def signals(self) -> contextlib.AbstractContextManager[None]:
        """SIGINT/SIGTERM are noted and agreed at the next step (see :meth:`agree`); a second
        one ends the process at once."""
        return catching(self._note_signal)

    def _note_signal(self, signum: int) -> None:
        self._pending = signum

    # ----------------------------------------------------------------- callback hooks
    def on_fit_start(self, trainer: Trainer) -> None:
        self.seed = trainer.seed
        if self.rank != 0:  # a resumed run's partial sums are rank 0's (gathered before saving)
            trainer._reset_accumulators()

    def on_batch_end(self, trainer: Trainer) -> None:
        if not trainer.nan_guard:  # otherwise the guard has agreed on signals this step
            self.agree(trainer, True)
        every = self.checkpoint_every_steps
        if trainer.state.interrupted or (every and trainer.state.step % every == 0):
            self.reduce_accumulators(trainer, onto_rank0=True)

    def on_epoch_end(self, trainer: Trainer) -> None:
        flag = torch.tensor([int(trainer.state.should_stop)], device=trainer.totals.loss_sum.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
        self.collectives += 1
        if flag.item() and not trainer.state.should_stop:
            trainer.request_stop("stopped on another rank")


def _weighted_all_reduce(state, bucket):
    """DDP's all-reduce of a gradient bucket (a dist.GradBucket; returns a Future of its
    tensor), weighted by this rank's share of the batch: DDP's own divides by the world size,
    right only when the shards are equal. Unannotated: DDP checks the annotations against
    the classes themselves, and under ``from __future__ import annotations`` they are
    strings."""
    buffer = bucket.buffer()
    buffer.mul_(state.weight)
    work = dist.all_reduce(buffer, group=state.group, async_op=True)
    assert work is not None
    return work.get_future().then(lambda fut: fut.value()[0])
