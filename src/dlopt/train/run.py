"""Train from a validated config: what ``dlopt train CONFIG --out DIR`` does."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import dlopt.optim as dlopt_optim
from dlopt._io import write_text_atomic
from dlopt._plots import plot_history
from dlopt.augment import (
    Augmentation,
    Compose,
    Elastic,
    InputNoise,
    PCAColor,
    RandomAffine,
    RandomCropFlip,
)
from dlopt.config import (
    AugmentConfig,
    OptimizerConfig,
    RegularizationConfig,
    RunConfig,
    ScheduleConfig,
)
from dlopt.data import Dataset, Splits, load_data, split_dataset
from dlopt.errors import ConfigError, DataError
from dlopt.nn import cnn, mlp
from dlopt.regularize import L1, L2, ElasticNet, Penalty
from dlopt.train.callbacks import Callback, EarlyStopping, History, ProgressBar
from dlopt.train.checkpoint import Checkpoint, previous_path
from dlopt.train.trainer import Trainer


def load_splits(config: RunConfig) -> Splits:
    data = load_data(config.data.name, label=config.data.label, labels=config.data.labels)
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


def build_model(config: RunConfig, data: Dataset) -> nn.Module:
    m = config.model
    out = data.n_classes if data.task == "classification" else 1
    try:
        if m.kind == "cnn":
            return cnn(
                data.feature_shape,
                out,
                m.channels,
                kernel_size=m.kernel_size,
                hidden=m.hidden,
                activation=m.activation,
                batch_norm=m.batch_norm,
                dropout=m.dropout,
            )
        return mlp(
            data.n_features,
            out,
            m.hidden,
            activation=m.activation,
            batch_norm=m.batch_norm,
            dropout=m.dropout,
            input_dropout=m.input_dropout,
            maxout_pieces=m.maxout_pieces,
            dropout_mode=m.dropout_mode,
            input_noise=m.input_noise,
            hidden_noise=m.hidden_noise,
        )
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None


def build_augment(config: AugmentConfig | None, train: Dataset) -> Augmentation | None:
    """The [augment] section as one Compose (None when it asks for nothing)."""
    if config is None:
        return None
    a = config
    affine = a.rotation > 0 or a.shift > 0 or a.scale != [1.0, 1.0] or a.hflip > 0 or a.vflip > 0
    geometric = a.crop_padding > 0 or affine or a.elastic_alpha > 0
    shape = a.shape or (list(train.feature_shape) if len(train.feature_shape) in (2, 3) else None)
    if (geometric or a.pca_color > 0) and shape is None:
        raise ConfigError(
            f"augment: the data's features have shape {train.feature_shape}, not images; give "
            "the images' shape: [augment] shape = [C, H, W]"
        )
    steps: list[Augmentation] = []
    try:
        if a.crop_padding > 0:
            steps.append(RandomCropFlip(a.crop_padding, flip=0.0, shape=shape))
        if affine:
            steps.append(
                RandomAffine(
                    rotation=a.rotation,
                    scale=(a.scale[0], a.scale[1]),
                    shift=a.shift,
                    hflip=a.hflip,
                    vflip=a.vflip,
                    shape=shape,
                )
            )
        if a.elastic_alpha > 0:
            steps.append(Elastic(a.elastic_alpha, a.elastic_sigma, shape=shape))
        if a.pca_color > 0:
            steps.append(PCAColor(a.pca_color, shape=shape).fit(train.X))
        if a.noise > 0:
            steps.append(InputNoise(a.noise))
        if steps:
            Compose(steps)(train.X[:2])  # a shape that does not fit the data fails here, once
    except ValueError as exc:
        raise ConfigError(f"augment: {exc}") from None
    return Compose(steps) if steps else None


def build_optimizer(config: OptimizerConfig, params: Any) -> torch.optim.Optimizer:
    o = config
    makers = {
        "sgd": lambda: torch.optim.SGD(params, lr=o.lr, weight_decay=o.weight_decay),
        "momentum": lambda: torch.optim.SGD(
            params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay
        ),
        "nesterov": lambda: torch.optim.SGD(
            params, lr=o.lr, momentum=o.momentum, nesterov=True, weight_decay=o.weight_decay
        ),
        "adam": lambda: torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay),
        "adamw": lambda: torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay),
        "rmsprop": lambda: torch.optim.RMSprop(
            params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay
        ),
        # dlopt's second-order methods: max_iter iterations per batch (one step per epoch
        # with batch_size ≥ the training set: full batch)
        "lbfgs": lambda: dlopt_optim.LBFGS(params, lr=o.lr, max_iter=o.max_iter),
        "bfgs": lambda: dlopt_optim.BFGS(params, lr=o.lr, max_iter=o.max_iter),
        "cg": lambda: dlopt_optim.NonlinearCG(params, lr=o.lr, max_iter=o.max_iter),
        "newton-cg": lambda: dlopt_optim.NewtonCG(params, lr=o.lr, max_iter=o.max_iter),
    }
    try:
        return makers[o.name]()
    except ValueError as exc:  # BFGS over its memory budget: the message names L-BFGS
        raise ConfigError(f'optimizer: {exc} In a config: [optimizer] name = "lbfgs".') from None


def build_penalties(config: RegularizationConfig) -> list[Penalty]:
    r = config
    penalties: list[Penalty] = []
    if r.l1 > 0:
        penalties.append(L1(r.l1, proximal=r.proximal, include=r.include))
    if r.l2 > 0:
        penalties.append(L2(r.l2, decoupled=r.decoupled, include=r.include))
    if r.elastic_net is not None:
        penalties.append(
            ElasticNet(
                r.elastic_net.lam, r.elastic_net.beta, proximal=r.proximal, include=r.include
            )
        )
    return penalties


def build_scheduler(config: ScheduleConfig, optimizer: torch.optim.Optimizer, epochs: int) -> Any:
    s, sched = config, torch.optim.lr_scheduler
    makers = {
        "none": lambda: None,
        "step": lambda: sched.StepLR(optimizer, s.step_size, s.gamma),
        "cosine": lambda: sched.CosineAnnealingLR(optimizer, epochs),
        "exponential": lambda: sched.ExponentialLR(optimizer, s.gamma),
        "plateau": lambda: sched.ReduceLROnPlateau(optimizer, factor=s.gamma, patience=s.patience),
    }
    return makers[s.name]()


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
    if not resume and (checkpoint.exists() or previous_path(checkpoint).exists()):
        raise DataError(
            "already holds a run (checkpoint.pt); pass --resume to continue it or "
            "choose another --out",
            source=out,
        )
    seed = config.seed + (member or 0)
    torch.manual_seed(seed)
    splits = load_splits(config)
    if bootstrap:
        from dlopt.ensemble import bootstrap_indices

        t = splits.train
        generator = torch.Generator().manual_seed(seed + 1000)
        idx = bootstrap_indices(len(t), 1, generator)[0]
        resampled = Dataset(t.X[idx], t.y[idx], t.task, t.name, t.n_classes)
        splits = Splits(resampled, splits.val, splits.test)
    device = _device(config.train.device)
    model = build_model(config, splits.train).to(device)
    optimizer = build_optimizer(config.optimizer, model.parameters())
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
    callbacks += [
        History(out / "history.csv"),
        ProgressBar(enabled=False if quiet else None),
        Checkpoint(out, every_steps=config.train.checkpoint_every_steps),
    ]
    trainer = Trainer(
        model,
        optimizer,
        loss=config.train.loss,
        max_epochs=config.train.epochs,
        batch_size=config.train.batch_size,
        scheduler=build_scheduler(config.schedule, optimizer, config.train.epochs),
        callbacks=callbacks,
        penalties=build_penalties(config.regularization),
        seed=seed,
        handle_signals=True,
        augment=build_augment(config.augment, splits.train),
    )
    if (
        config.early_stopping is not None
        and splits.val is None
        and config.early_stopping.monitor.startswith("val_")
    ):
        raise ConfigError(
            "early_stopping.monitor: monitors a validation metric but data.val_fraction is 0"
        )
    out.mkdir(parents=True, exist_ok=True)
    trainer.fit(splits.train, splits.val, resume_from=checkpoint if resume else None)
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
    from dlopt.ensemble import average, member_outputs, vote

    assert config.ensemble is not None
    e = config.ensemble
    if not resume and any(out.glob("member-*/checkpoint.pt")):
        raise DataError(
            "already holds an ensemble; pass --resume to continue it or choose another --out",
            source=out,
        )
    splits = load_splits(config)  # every member's split: the test set is the ensemble's too
    device = _device(config.train.device)
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
            resume=resume and (folder / "checkpoint.pt").exists(),
            quiet=True,
            member=i,
            bootstrap=e.bootstrap,
        )
        if result.interrupted:
            return EnsembleResult(members, {}, result.interrupted)
        members.append(result)
    models = [m.trainer.model for m in members]
    outputs = member_outputs(models, splits.test.X.to(device)).float().cpu()
    y = splits.test.y
    accuracy = {
        f"member_{i}_accuracy": float((o.argmax(-1) == y).float().mean())
        for i, o in enumerate(outputs)
    }
    summary = {
        "name": config.name,
        "members": e.members,
        "bootstrap": e.bootstrap,
        **accuracy,
        "members_mean_accuracy": sum(accuracy.values()) / len(accuracy),
        "average_accuracy": float((average(outputs).argmax(-1) == y).float().mean()),
        "vote_accuracy": float((vote(outputs) == y).float().mean()),
    }
    write_text_atomic(out / "metrics.json", json.dumps(summary, indent=1))
    if not quiet:
        print(
            f"{config.name}: {e.members} members, mean test accuracy "
            f"{summary['members_mean_accuracy']:.4f}; model average {summary['average_accuracy']:.4f}, "
            f"vote {summary['vote_accuracy']:.4f}",
            file=sys.stderr,
        )
    return EnsembleResult(members, summary, None)


def _finished_member(
    config: RunConfig, splits: Splits, device: torch.device, folder: Path
) -> RunResult:
    """A member trained by an earlier call: its model as evaluated, which the Checkpoint
    callback wrote to best.pt when the run ended (best weights restored, if early stopping
    did), before metrics.json."""
    from dlopt.train.checkpoint import load_checkpoint

    model = build_model(config, splits.train).to(device)
    model.load_state_dict(load_checkpoint(folder / "best.pt")[0]["model"])
    return RunResult(Trainer(model), json.loads((folder / "metrics.json").read_text()), None)
