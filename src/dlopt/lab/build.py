"""Config sections → objects: the one OPTIMIZERS table, and the model, augmentation, penalty and
scheduler builders. `dlopt.lab.config` derives its optimizer names, and which options each one
reads, from the table, so a name or an option is written once."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dlopt.optim as dlopt_optim
from dlopt.augment import (
    Augmentation,
    Compose,
    Elastic,
    InputNoise,
    PCAColor,
    RandomAffine,
    RandomCropFlip,
)
from dlopt.data import Dataset
from dlopt.errors import ConfigError
from dlopt.nn import cnn, mlp
from dlopt.regularize import L1, L2, ElasticNet, Penalty
from dlopt.regularize.penalties import select_parameters
from dlopt.train.schedules import one_cycle, warmup, warmup_cosine
from dlopt.train.scores import metric
from dlopt.train.swa import SWA

if TYPE_CHECKING:
    from dlopt.lab.config import (
        AugmentConfig,
        OptimizerConfig,
        RegularizationConfig,
        RunConfig,
        ScheduleConfig,
    )


@dataclass(frozen=True)
class OptimizerEntry:
    """How one `[optimizer] name` is built, and the options it reads (beyond name and lr)."""

    make: Callable[[list[dict[str, Any]], OptimizerConfig], torch.optim.Optimizer]
    options: tuple[str, ...]
    second_order: bool = False


_FIRST = ("weight_decay", "decay_include")
_SECOND = ("max_iter",)


# dlopt's second-order methods run max_iter iterations per batch (one step per epoch with
# batch_size ≥ the training set: full batch); weight decay there is a penalty of the loss
OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry(lambda g, o: torch.optim.SGD(g, lr=o.lr), _FIRST),
    "momentum": OptimizerEntry(
        lambda g, o: torch.optim.SGD(g, lr=o.lr, momentum=o.momentum), (*_FIRST, "momentum")
    ),
    "nesterov": OptimizerEntry(
        lambda g, o: torch.optim.SGD(g, lr=o.lr, momentum=o.momentum, nesterov=True),
        (*_FIRST, "momentum"),
    ),
    "adam": OptimizerEntry(lambda g, o: torch.optim.Adam(g, lr=o.lr), _FIRST),
    "adamw": OptimizerEntry(lambda g, o: torch.optim.AdamW(g, lr=o.lr), _FIRST),
    "rmsprop": OptimizerEntry(
        lambda g, o: torch.optim.RMSprop(g, lr=o.lr, momentum=o.momentum), (*_FIRST, "momentum")
    ),
    "lbfgs": OptimizerEntry(
        lambda g, o: dlopt_optim.LBFGS(g, lr=o.lr, max_iter=o.max_iter), _SECOND, True
    ),
    "bfgs": OptimizerEntry(
        lambda g, o: dlopt_optim.BFGS(g, lr=o.lr, max_iter=o.max_iter), _SECOND, True
    ),
    "cg": OptimizerEntry(
        lambda g, o: dlopt_optim.NonlinearCG(g, lr=o.lr, max_iter=o.max_iter), _SECOND, True
    ),
    "newton-cg": OptimizerEntry(
        lambda g, o: dlopt_optim.NewtonCG(g, lr=o.lr, max_iter=o.max_iter), _SECOND, True
    ),
}


def optimizers_reading(option: str) -> list[str]:
    """The optimizer names whose builder reads `option`, in table order."""
    return [name for name, entry in OPTIMIZERS.items() if option in entry.options]


def parameter_groups(model: nn.Module, config: OptimizerConfig) -> list[dict[str, Any]]:
    """The model's parameters as optimizer groups: with weight decay, decayed weights in one
    group and biases and BN parameters (undecayed) in another unless ``decay_include = "all"``
    (SPEC C3: the penalty is on the weights)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if "weight_decay" not in OPTIMIZERS[config.name].options:
        return [{"params": params}]
    decayed = select_parameters(model, config.decay_include)
    chosen = {id(p) for p in decayed}
    rest = [p for p in params if id(p) not in chosen]
    groups = [{"params": decayed, "weight_decay": config.weight_decay}]
    if rest:
        groups.append({"params": rest, "weight_decay": 0.0})
    return groups


def expected_groups(config: OptimizerConfig, model: nn.Module) -> list[dict[str, Any]]:
    """The numbers each of :func:`build_optimizer`'s groups will hold (lr and the numeric options
    its builder reads), without building it: what a checkpoint's groups are checked against
    before the optimizer exists (:func:`dlopt.train.resume.check_payload`)."""
    options = ("lr", *OPTIMIZERS[config.name].options)
    values = {k: getattr(config, k) for k in options}
    numbers = {k: v for k, v in values.items() if isinstance(v, int | float)}
    return [
        numbers | {k: v for k, v in group.items() if k != "params"}
        for group in parameter_groups(model, config)
    ]


def build_optimizer(config: OptimizerConfig, model: nn.Module) -> torch.optim.Optimizer:
    try:
        return OPTIMIZERS[config.name].make(parameter_groups(model, config), config)
    except ValueError as exc:  # BFGS over its memory budget: the message names L-BFGS
        raise ConfigError(f'optimizer: {exc} In a config: [optimizer] name = "lbfgs".') from None


def model_input_shape(config: RunConfig, data: Dataset) -> tuple[int, ...]:
    """The shape a CNN sees each sample as: [data] shape, else the data's own."""
    shape = sample_shape(config, data)
    return tuple(shape) if shape is not None else tuple(data.feature_shape)


IMAGE_SHAPES = {"digits": [1, 8, 8]}  # bundled sets of flat image rows


def sample_shape(config: RunConfig, data: Dataset) -> list[int] | None:
    """Each sample's [C, H, W]: [data] shape, a bundled image set's, or the data's own when it
    has 2 or 3 dimensions; None for flat features. A shape that does not hold the sample's
    values is a ConfigError."""
    shape = config.data.shape or IMAGE_SHAPES.get(config.data.name)
    if shape is None:
        return list(data.feature_shape) if len(data.feature_shape) in (2, 3) else None
    if math.prod(shape) != math.prod(data.feature_shape):
        raise ConfigError(
            f"data.shape: {list(shape)} holds {math.prod(shape)} values but each sample has "
            f"{math.prod(data.feature_shape)} (features {tuple(data.feature_shape)})"
        )
    return list(shape)


def image_shape(config: RunConfig, data: Dataset) -> list[int] | None:
    """The images' shape for augmentation: [augment] shape, else :func:`sample_shape`."""
    if config.augment is not None and config.augment.shape is not None:
        return config.augment.shape
    return sample_shape(config, data)


def build_model(config: RunConfig, data: Dataset) -> nn.Module:
    m = config.model
    out = data.n_classes if data.task == "classification" else 1
    try:
        if m.kind == "cnn":
            return cnn(
                model_input_shape(config, data),
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


def build_augment(
    config: AugmentConfig | None, train: Dataset, shape: Sequence[int] | None = None
) -> Augmentation | None:
    """The [augment] section as one Compose (None when it asks for nothing)."""
    if config is None:
        return None
    a = config
    affine = a.rotation > 0 or a.shift > 0 or a.scale != [1.0, 1.0] or a.hflip > 0 or a.vflip > 0
    geometric = a.crop_padding > 0 or affine or a.elastic_alpha > 0
    if shape is None:
        shape = a.shape or (
            list(train.feature_shape) if len(train.feature_shape) in (2, 3) else None
        )
    if (geometric or a.pca_color > 0) and shape is None:
        raise ConfigError(
            f"augment: the data's features have shape {train.feature_shape}, not images; give "
            "the images' shape: [data] shape = [C, H, W]"
        )
    shape = list(shape) if shape is not None else None
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


SCHEDULERS: dict[str, Callable[[ScheduleConfig, torch.optim.Optimizer, int], Any]] = {
    "none": lambda s, opt, epochs: None,
    "step": lambda s, opt, epochs: torch.optim.lr_scheduler.StepLR(opt, s.step_size, s.gamma),
    "cosine": lambda s, opt, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs),
    "exponential": lambda s, opt, epochs: torch.optim.lr_scheduler.ExponentialLR(opt, s.gamma),
    "plateau": lambda s, opt, epochs: torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=s.gamma, patience=s.patience
    ),
}
# per-step schedules: called with the run's total number of optimizer steps
STEP_SCHEDULERS: dict[str, Callable[[ScheduleConfig, torch.optim.Optimizer, int], Any]] = {
    "one_cycle": lambda s, opt, steps: one_cycle(opt, steps, pct_start=s.pct_start),
    "none": lambda s, opt, steps: warmup(opt, s.warmup_steps),
    "cosine": lambda s, opt, steps: warmup_cosine(opt, s.warmup_steps, steps),
}


def schedule_interval(config: ScheduleConfig) -> str:
    """ "step" for one-cycle and warm-up schedules, else "epoch"."""
    return "step" if config.name == "one_cycle" or config.warmup_steps else "epoch"


def build_scheduler(
    config: ScheduleConfig, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int = 1
) -> Any:
    """The [schedule] section's scheduler; per-step ones span ``epochs · steps_per_epoch``."""
    if schedule_interval(config) == "step":
        try:
            return STEP_SCHEDULERS[config.name](config, optimizer, epochs * steps_per_epoch)
        except ValueError as exc:
            raise ConfigError(f"schedule: {exc}") from None
    return SCHEDULERS[config.name](config, optimizer, epochs)


def training_data(config: RunConfig, train: Dataset, seed: int) -> Dataset | DataLoader:
    """The training set as the Trainer gets it: in memory (index slicing, the fast path), or
    with ``[train] loader_workers = N`` a shuffling ``DataLoader`` over it, with N worker
    processes and a generator seeded from `seed` (exact resume; see dlopt.train.sources)."""
    workers = config.train.loader_workers
    if workers is None:
        return train
    return DataLoader(
        TensorDataset(train.X, train.y),
        batch_size=min(config.train.batch_size, len(train)),
        shuffle=True,
        num_workers=workers,
        generator=torch.Generator().manual_seed(seed),
    )


def steps_per_epoch(config: RunConfig, train: Dataset) -> int:
    size = min(config.train.batch_size, len(train))
    return -(-len(train) // size)


def trainer_options(config: RunConfig, train: Dataset) -> dict[str, Any]:
    """The Trainer's keyword options from [train], [schedule] and [swa]; a label smoothing or a
    metric that does not fit the data's task is a ConfigError."""
    t = config.train
    classification = train.task == "classification"
    if t.label_smoothing and not classification:
        raise ConfigError(f"train.label_smoothing: the data {train.name!r} is a regression task")
    if OPTIMIZERS[config.optimizer.name].second_order and (t.clip_grad_norm or t.mixed_precision):
        raise ConfigError(
            f"train: clip_grad_norm and mixed_precision apply to first-order optimizers; "
            f"{config.optimizer.name} runs its own line search"
        )
    for name in t.metrics:
        if metric(name).classification != classification:
            raise ConfigError(
                f"train.metrics: {name!r} does not apply to the {train.task} data {train.name!r}"
            )
    swa = config.swa
    return {
        "clip_grad_norm": t.clip_grad_norm,
        "label_smoothing": t.label_smoothing,
        "mixed_precision": t.mixed_precision,
        "metrics": tuple(t.metrics),
        "scheduler_interval": schedule_interval(config.schedule),
        "swa": None
        if swa is None
        else SWA(
            swa.lr,
            start=swa.start,
            anneal_epochs=swa.anneal_epochs,
            anneal_strategy=swa.anneal_strategy,
        ),
    }
