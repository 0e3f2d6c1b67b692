"""Train from a validated config: what ``dlopt train CONFIG --out DIR`` does."""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dlopt._io import read_input, write_text_atomic
from dlopt._plots import plot_history
from dlopt.data import Dataset, Splits, load_data, split_dataset
from dlopt.errors import CheckpointError, ConfigError, DataError
from dlopt.lab.build import (
    build_augment,
    build_model,
    build_optimizer,
    build_penalties,
    build_scheduler,
    expected_groups,
    image_shape,
    steps_per_epoch,
    trainer_options,
    training_data,
)
from dlopt.lab.config import RunConfig
from dlopt.lab.folder import check_stored_config, locked, store_or_check_config, write_config
from dlopt.lab.reuse import write_run_info
from dlopt.train.callbacks import Callback, EarlyStopping, History
from dlopt.train.checkpoint import Checkpoint, load_checkpoint, previous_path
from dlopt.train.distributed import DataParallel, init_process_group, world_from_env
from dlopt.train.progress import ProgressBar
from dlopt.train.resume import check_payload
from dlopt.train.tensorboard import EXTRA_HINT, TensorBoard, tensorboard_available
from dlopt.train.trainer import Trainer


def load_splits(config: RunConfig) -> Splits:
    d = config.data
    data = load_data(d.name, label=d.label, labels=d.labels, task=d.task)
    check_loss(config, data)
    try:
        return split_dataset(
            data,
            val_fraction=config.data.val_fraction,
            test_fraction=config.data.test_fraction,
            seed=config.seed,
            standardize=config.data.standardize,
            train_size=config.data.train_size,
        )
    except ValueError as exc:
        raise ConfigError(f"data: {exc}", source=config.data.name) from None


def check_loss(config: RunConfig, data: Dataset) -> None:
    """Refuse, before any training, a [train] loss that does not fit the data's task."""
    needs = {"cross_entropy": "classification", "mse": "regression"}.get(config.train.loss)
    if needs is not None and data.task != needs:
        hint = (
            f'; set [data] task = "{needs}"'
            if config.data.task == "auto" and (needs == "regression" or data.task == "regression")
            else ""
        )
        raise ConfigError(
            f"train.loss: {config.train.loss!r} needs a {needs} task but the data "
            f"({config.data.name}) is {data.task}{hint}"
        )


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: 'cuda' requested but no CUDA device is available")
    return torch.device(
        "cuda"
        if name == "auto" and torch.cuda.is_available()
        else "cpu"
        if name == "auto"
        else name
    )


@dataclass(frozen=True)
class RunResult:
    trainer: Trainer
    test_metrics: dict[str, float]
    interrupted: int | None


def use_threads(config: RunConfig) -> int:
    """Set torch's intra-op threads: `dlopt --threads N` (DLOPT_THREADS), else [train] threads,
    else the cores this process may use, at most 4 (past that, small models only lose to the
    threads' synchronisation)."""
    import os

    chosen = os.environ.get("DLOPT_THREADS")
    if chosen is not None and chosen.isdigit() and 1 <= int(chosen) <= 256:
        count = int(chosen)
    elif config.train.threads is not None:
        count = config.train.threads
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        count = min(cores or 1, 4)
    torch.set_num_threads(count)
    return count


def train_run(
    config: RunConfig,
    out: Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    extra_callbacks: tuple[Callback, ...] = (),
    member: int | None = None,
    bootstrap: bool = False,
) -> RunResult:
    """Build everything from `config`, train, and write the run's files into `out`.

    An ensemble's `member` i keeps the config's data split and draws its initial values and
    batch order from seed + i; with `bootstrap`, it trains on a bootstrap resample of the
    training set drawn from seed + 1000 + i."""
    checkpoint = out / "checkpoint.pt"
    if resume and not _holds_run(out):  # refused before the folder gets a config.json
        raise CheckpointError("no checkpoint to resume from", source=checkpoint)
    if not resume and _holds_run(out):
        raise DataError(
            "already holds a run (checkpoint.pt); pass --resume to continue it or "
            "choose another --out",
            source=out,
        )
    if config.train.tensorboard is not None and not tensorboard_available():
        raise ConfigError(
            f"needs the tensorboard package: {EXTRA_HINT}", source="train.tensorboard"
        )
    use_threads(config)
    seed = config.seed + (member or 0)
    torch.manual_seed(seed)
    splits = load_splits(config)
    if bootstrap:
        from dlopt.ensemble import bootstrap_indices

        t = splits.train
        generator = torch.Generator().manual_seed(seed + 1000)
        idx = bootstrap_indices(len(t), 1, generator)[0]
        resampled = Dataset(t.X[idx], t.y[idx], t.task, t.name, t.n_classes)
        splits = Splits(resampled, splits.val, splits.test, splits.transform)
    device = _device(config.train.device)
    model = build_model(config, splits.train)
    if resume:  # a bad checkpoint is refused before the optimizer is built (seconds of imports)
        check_stored_config(config, out)  # another run's config names the key that differs
        payload, used = load_checkpoint(checkpoint)
        try:
            check_payload(payload, model.state_dict(), expected_groups(config.optimizer, model))
        except CheckpointError as exc:
            raise CheckpointError(exc.reason, source=used) from None
    # several processes (torchrun): join the group; only rank 0 writes files (below)
    parallel, device, model = _parallel(config, device, model)
    rank0 = parallel is None or parallel.rank == 0
    model = model.to(device)
    optimizer = build_optimizer(config.optimizer, model)
    callbacks: list[Callback] = list(extra_callbacks)
    if config.early_stopping is not None:
        es = config.early_stopping
        callbacks.append(
            EarlyStopping(
                es.monitor,
                mode=es.mode,
                patience=es.patience,
                min_delta=es.min_delta,
                restore_best_weights=es.restore_best_weights,
            )
        )
    if rank0:
        callbacks += [
            History(out / "history.csv"),
            ProgressBar(enabled=False if quiet else None),
            Checkpoint(out, every_steps=config.train.checkpoint_every_steps),
        ]
        if config.train.tensorboard is not None:  # a relative folder lies in the run's
            callbacks.append(TensorBoard(out / config.train.tensorboard))
    trainer = Trainer(
        model,
        optimizer,
        loss=config.train.loss,
        max_epochs=config.train.epochs,
        batch_size=config.train.batch_size,
        scheduler=build_scheduler(
            config.schedule, optimizer, config.train.epochs, steps_per_epoch(config, splits.train)
        ),
        callbacks=callbacks,
        penalties=build_penalties(config.regularization),
        seed=seed,
        handle_signals=parallel is None,
        augment=build_augment(config.augment, splits.train, image_shape(config, splits.train)),
        **trainer_options(config, splits.train),
        distributed=parallel,
    )
    if not rank0:  # the other ranks train in step with rank 0 and write nothing
        assert parallel is not None
        with parallel.signals():
            trainer.fit(
                training_data(config, splits.train, seed),
                splits.val,
                resume_from=checkpoint if resume else None,
            )
        parallel.leave_together()
        return RunResult(trainer, {}, trainer.state.interrupted)
    with locked(out):
        pending = store_or_check_config(config, out, resume=resume)
        train = training_data(config, splits.train, seed)
        with parallel.signals() if parallel is not None else contextlib.nullcontext():
            trainer.fit(train, splits.val, resume_from=checkpoint if resume else None)
        if pending:
            write_config(config, out)
        result = _finish(config, out, trainer, splits, quiet)
    if parallel is not None:
        parallel.leave_together()
    return result


def _parallel(
    config: RunConfig, device: torch.device, model: torch.nn.Module
) -> tuple[DataParallel | None, torch.device, torch.nn.Module]:
    """Under torchrun (WORLD_SIZE > 1): the process group joined, this rank's device, and the
    model with SyncBatchNorm where ``[train] sync_batchnorm`` asks for it."""
    if world_from_env() == 1:
        return None, device, model
    device = init_process_group(device)
    if config.train.sync_batchnorm:
        if device.type != "cuda":
            raise ConfigError(
                "train.sync_batchnorm needs CUDA devices (torch's SyncBatchNorm has no CPU "
                "kernel); set it to false, or train on GPUs"
            )
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    parallel = DataParallel(checkpoint_every_steps=config.train.checkpoint_every_steps)
    return parallel, device, model


def _holds_run(folder: Path) -> bool:
    checkpoint = folder / "checkpoint.pt"
    return checkpoint.exists() or previous_path(checkpoint).exists()


def _finish(
    config: RunConfig, out: Path, trainer: Trainer, splits: Splits, quiet: bool
) -> RunResult:
    if trainer.state.interrupted:
        return RunResult(trainer, {}, trainer.state.interrupted)
    test = {f"test_{k}": v for k, v in trainer.evaluate(splits.test).items()}
    summary = {
        "name": config.name,
        "epochs": trainer.state.epoch,
        "steps": trainer.state.step,
        "stop_reason": trainer.state.stop_reason,
        **test,
    }
    write_run_info(out, splits)
    write_text_atomic(out / "metrics.json", json.dumps(summary, indent=1))
    if trainer.state.history:
        plot_history(trainer.state.history, out / "curves.png", title=config.name)
    if not quiet:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in test.items())
        print(f"{config.name}: {trainer.state.epoch} epochs; {shown}", file=sys.stderr)
    return RunResult(trainer, test, None)


@dataclass(frozen=True)
class EnsembleResult:
    members: list[RunResult]
    test_metrics: dict[str, Any]
    interrupted: int | None


def ensemble_run(
    config: RunConfig, out: Path, *, resume: bool = False, quiet: bool = False
) -> EnsembleResult:
    """[ensemble]: the members in OUT/member-N (each a full run: resumable, its own files),
    then the model average and the vote on the test set in OUT/metrics.json. With --resume,
    finished members are read back from their best.pt and the rest train or continue."""
    if world_from_env() > 1:
        raise ConfigError(
            "ensemble: members train one after another in one process; run it without "
            "torchrun or --nproc"
        )
    if not resume and any(_holds_run(folder) for folder in out.glob("member-*")):
        raise DataError(
            "already holds an ensemble; pass --resume to continue it or choose another --out",
            source=out,
        )
    splits = load_splits(config)  # every member's split: the test set is the ensemble's too
    device = _device(config.train.device)
    with locked(out):
        if store_or_check_config(config, out, resume=resume):
            write_config(config, out)  # no checkpoint of its own to read first
        return _ensemble(config, out, splits, device, quiet=quiet, resume=resume)


def _ensemble(
    config: RunConfig, out: Path, splits: Splits, device: torch.device, *, quiet: bool, resume: bool
) -> EnsembleResult:
    assert config.ensemble is not None
    e = config.ensemble
    single = config.model_copy(update={"ensemble": None})
    members: list[RunResult] = []
    for i in range(e.members):
        folder = out / f"member-{i}"
        if (folder / "metrics.json").exists():  # finished by an earlier call
            members.append(_finished_member(single, splits, device, folder))
            continue
        result = train_run(
            single,
            folder,
            resume=resume and _holds_run(folder),
            quiet=True,
            member=i,
            bootstrap=e.bootstrap,
        )
        if result.interrupted:
            return EnsembleResult(members, {}, result.interrupted)
        members.append(result)
    summary = {
        "name": config.name,
        "members": e.members,
        "bootstrap": e.bootstrap,
        **ensemble_metrics([m.trainer.model for m in members], splits.test, device),
    }
    write_run_info(out, splits)
    write_text_atomic(out / "metrics.json", json.dumps(summary, indent=1))
    if not quiet:
        print(
            f"{config.name}: {e.members} members, mean test accuracy "
            f"{summary['members_mean_accuracy']:.4f}; model average {summary['average_accuracy']:.4f}, "
            f"vote {summary['vote_accuracy']:.4f}",
            file=sys.stderr,
        )
    return EnsembleResult(members, summary, None)


def ensemble_metrics(
    models: list[torch.nn.Module], test: Dataset, device: torch.device
) -> dict[str, float]:
    """Each member's test accuracy, their mean, the model average's and the vote's."""
    from dlopt.ensemble import average, member_outputs, vote

    outputs = member_outputs(models, test.X.to(device)).float().cpu()
    y = test.y
    accuracy = {
        f"member_{i}_accuracy": float((o.argmax(-1) == y).float().mean())
        for i, o in enumerate(outputs)
    }
    return {
        **accuracy,
        "members_mean_accuracy": sum(accuracy.values()) / len(accuracy),
        "average_accuracy": float((average(outputs).argmax(-1) == y).float().mean()),
        "vote_accuracy": float((vote(outputs) == y).float().mean()),
    }


def _finished_member(
    config: RunConfig, splits: Splits, device: torch.device, folder: Path
) -> RunResult:
    """A member trained by an earlier call: its model as evaluated, which the Checkpoint
    callback wrote to best.pt when the run ended (best weights restored, if early stopping
    did), before metrics.json."""
    model = build_model(config, splits.train).to(device)
    model.load_state_dict(load_checkpoint(folder / "best.pt")[0]["model"])
    path = folder / "metrics.json"
    try:
        metrics = json.loads(
            read_input(path, CheckpointError, kind="metrics file", max_bytes=1 << 20)
        )
    except ValueError:  # includes UnicodeDecodeError
        raise CheckpointError(
            "not valid JSON; delete the member's folder to retrain it", source=path
        ) from None
    if not isinstance(metrics, dict):
        raise CheckpointError(
            "not a metrics table; delete the member's folder to retrain it", source=path
        )
    return RunResult(Trainer(model), metrics, None)
