"""The sections of a run configuration (``[data]``, ``[model]``, ``[optimizer]``, …): each key's
type, range and the rules that stay inside one section. Rules across sections live on
:class:`dlopt.lab.config.RunConfig`.

Sizes beyond which allocation is impossible or absurd on any machine are refused here, before
anything is built.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dlopt._validation import did_you_mean, unknown
from dlopt.lab.build import OPTIMIZERS, optimizers_reading
from dlopt.nn.activations import activation_names
from dlopt.train.scores import METRIC_NAMES, is_metric

# sizes beyond which allocation is impossible or absurd on any machine: refused up front
MAX_WIDTH = 1 << 16  # a layer's units or channels
MAX_SIZE = 1 << 16  # an image side, a padding, a kernel
MAX_SEED = 2**32 - 1  # seeds are combined with counters; torch takes < 2**64
MAX_TRIALS = 100_000


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class DataConfig(_Section):
    name: str = "digits"  # a bundled data set, or a file path
    label: str | None = None  # CSV label column
    task: Literal["auto", "classification", "regression"] = "auto"
    labels: str | None = None  # IDX labels file for an images file
    val_fraction: float = Field(0.15, ge=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    standardize: bool = True
    train_size: int | None = Field(None, ge=1)
    shape: list[int] | None = None  # each sample's [C, H, W] (or [C, L]); inferred for images

    @field_validator("shape")
    @classmethod
    def _sample_shape(cls, shape: list[int] | None) -> list[int] | None:
        if shape is not None and (not 1 <= len(shape) <= 3 or not 1 <= min(shape) <= MAX_SIZE):
            raise ValueError(f"must be [C, H, W], [C, L] or [L] with sizes 1–{MAX_SIZE}")
        return shape


class ModelConfig(_Section):
    kind: Literal["mlp", "cnn"] = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [128])
    activation: str = "relu"
    batch_norm: bool = False
    dropout: float = Field(0.0, ge=0, lt=1)
    input_dropout: float = Field(0.0, ge=0, lt=1)
    maxout_pieces: int = Field(2, ge=1)
    dropout_mode: Literal["inverted", "classic"] = "inverted"
    input_noise: float = Field(0.0, ge=0)
    hidden_noise: float = Field(0.0, ge=0)
    channels: list[int] = Field(default_factory=lambda: [16, 32])
    kernel_size: int = Field(3, ge=1, le=MAX_SIZE)

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, name: str) -> str:
        names = activation_names()
        if name not in names:
            raise ValueError(unknown("activation", name, names))
        return name

    @field_validator("hidden", "channels")
    @classmethod
    def _positive_widths(cls, widths: list[int]) -> list[int]:
        if any(not 1 <= w <= MAX_WIDTH for w in widths):
            raise ValueError(f"every width must lie in 1–{MAX_WIDTH}; got {widths}")
        return widths


_OPTION_HINTS = {  # said after "<option> is an option of …, not of <name>"
    ("momentum", "sgd"): ' (for SGD with momentum: name = "momentum")',
    **{
        ("weight_decay", name): "; penalize the loss instead: [regularization] l2 = ..."
        for name, entry in OPTIMIZERS.items()
        if entry.second_order
    },
}


class OptimizerConfig(_Section):
    """`name` is a key of :data:`dlopt.lab.build.OPTIMIZERS`; an option written in the file
    must be one that optimizer reads."""

    name: str = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_iter: int = Field(20, ge=1, le=100_000)  # second-order methods: iterations per batch
    decay_include: Literal["weights", "all"] = "weights"  # weight_decay on biases and BN too?

    @field_validator("name")
    @classmethod
    def _known_optimizer(cls, name: str) -> str:
        if name not in OPTIMIZERS:
            raise ValueError(unknown("optimizer", name, OPTIMIZERS))
        return name

    @model_validator(mode="after")
    def _options_apply_to_the_optimizer(self) -> OptimizerConfig:
        reads = OPTIMIZERS[self.name].options
        for option in sorted(self.model_fields_set - {"name", "lr"}):  # written in the file
            if option not in reads:
                raise ValueError(
                    f"{option} is an option of {', '.join(optimizers_reading(option))}, "
                    f"not of {self.name}" + _OPTION_HINTS.get((option, self.name), "")
                )
        return self


class ScheduleConfig(_Section):
    """Per-epoch schedules, or per-step ones: "one_cycle", and a linear warm-up of
    `warmup_steps` steps before "none" or "cosine" (then annealed per step)."""

    name: Literal["none", "step", "cosine", "exponential", "plateau", "one_cycle"] = "none"
    step_size: int = Field(10, ge=1)
    gamma: float = Field(0.1, gt=0, le=1)
    patience: int = Field(5, ge=0)
    warmup_steps: int = Field(0, ge=0)
    pct_start: float = Field(0.3, gt=0, lt=1)  # one_cycle: share of steps rising

    @model_validator(mode="after")
    def _warmup_applies(self) -> ScheduleConfig:
        if self.warmup_steps and self.name not in ("none", "cosine"):
            raise ValueError(
                f'warmup_steps works with name = "none" or "cosine", not {self.name!r}'
            )
        return self


class TrainConfig(_Section):
    epochs: int = Field(50, ge=1)
    batch_size: int = Field(64, ge=1)
    loss: Literal["auto", "cross_entropy", "mse"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    checkpoint_every_steps: int = Field(0, ge=0)
    clip_grad_norm: float | None = Field(None, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    mixed_precision: bool = False  # bfloat16 autocast on CPU, float16 + GradScaler on CUDA
    metrics: list[str] = Field(default_factory=list)  # logged as val_<name>
    loader_workers: int | None = Field(None, ge=0, le=64)  # a DataLoader with N workers
    threads: int | None = Field(None, ge=1, le=256)  # torch's intra-op threads; --threads wins
    sync_batchnorm: bool = False  # several processes: BN statistics over the global batch
    tensorboard: str | None = Field(None, min_length=1)  # event files' folder; relative: in OUT

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, names: list[str]) -> list[str]:
        for name in names:
            if not is_metric(name):
                raise ValueError(unknown("metric", name, METRIC_NAMES))
        return names

    @model_validator(mode="after")
    def _smoothing_needs_cross_entropy(self) -> TrainConfig:
        if self.label_smoothing and self.loss == "mse":
            raise ValueError('label_smoothing smooths the cross-entropy, not loss = "mse"')
        return self


class SWAConfig(_Section):
    """Stochastic weight averaging from epoch `start` on (see dlopt.train.SWA)."""

    lr: float = Field(gt=0)
    start: int = Field(ge=0)
    anneal_epochs: int = Field(1, ge=0)
    anneal_strategy: Literal["cos", "linear"] = "cos"


class EarlyStoppingConfig(_Section):
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    patience: int = Field(10, ge=1)
    min_delta: float = Field(0.0, ge=0)
    restore_best_weights: bool = True


class ElasticNetConfig(_Section):
    lam: float = Field(gt=0)
    beta: float = Field(ge=0)


class RegularizationConfig(_Section):
    """J_reg = J + λR on the weights (biases and BN excluded unless ``include = "all"``)."""

    l1: float = Field(0.0, ge=0)
    l2: float = Field(0.0, ge=0)
    elastic_net: ElasticNetConfig | None = None
    proximal: bool = False  # L1 parts as a soft-threshold step (exact zeros)
    decoupled: bool = False  # L2 as AdamW-style decay after the step
    include: Literal["weights", "all"] = "weights"


class AugmentConfig(_Section):
    """Training-batch augmentation (dlopt.augment), applied in this order: crop, affine map,
    elastic deformation, PCA colour, input noise. Geometry needs the images' shape: `shape`,
    or the data's own when it is (H, W) or (C, H, W)."""

    shape: list[int] | None = None
    crop_padding: int = Field(0, ge=0, le=MAX_SIZE)
    rotation: float = Field(0.0, ge=0, le=180)  # degrees, ±
    shift: float = Field(0.0, ge=0, le=MAX_SIZE)  # pixels, ±
    scale: list[float] = Field(default_factory=lambda: [1.0, 1.0])
    hflip: float = Field(0.0, ge=0, le=1)
    vflip: float = Field(0.0, ge=0, le=1)
    elastic_alpha: float = Field(0.0, ge=0, le=MAX_SIZE)
    elastic_sigma: float = Field(4.0, gt=0, le=MAX_SIZE)
    pca_color: float = Field(0.0, ge=0)
    noise: float = Field(0.0, ge=0)

    @field_validator("shape")
    @classmethod
    def _image_shape(cls, shape: list[int] | None) -> list[int] | None:
        if shape is not None and (len(shape) not in (2, 3) or not 1 <= min(shape) <= MAX_SIZE):
            raise ValueError(f"must be [H, W] or [C, H, W] with sizes >= 1; got {shape}")
        return shape

    @field_validator("scale")
    @classmethod
    def _scale_range(cls, scale: list[float]) -> list[float]:
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"must be [low, high] with 0 < low <= high; got {scale}")
        return scale


class SearchParamConfig(_Section):
    """One searched key: a range (`low`, `high`, `log`, `integer`) or `choices`."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchParamConfig:
        ranged = self.low is not None or self.high is not None
        if (self.choices is None) == (not ranged):
            raise ValueError("give either low and high, or choices")
        if ranged:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"needs low < high; got {self.low}, {self.high}")
            if self.log and self.low <= 0:
                raise ValueError(f"a log scale needs low > 0; got {self.low}")
            if self.integer and not math.ceil(self.low) < math.floor(self.high):
                raise ValueError(
                    f"an integer range needs two integers between low and high; got "
                    f"{self.low}, {self.high}"
                )
            if self.integer and self.log and self.low < 1:
                raise ValueError(f"an integer log scale needs low >= 1; got {self.low}")
        elif not self.choices:
            raise ValueError("choices is empty")
        return self


class SearchConfig(_Section):
    """`dlopt search`: which keys of this config to search, how, and what to optimize."""

    strategy: Literal["manual", "grid", "random", "coarse-to-fine", "tpe"] = "random"
    n_trials: int = Field(20, ge=1, le=MAX_TRIALS)
    q: int = Field(3, ge=1, le=1000)
    rounds: int = Field(3, ge=1, le=1000)
    monitor: str = "val_loss"  # minimized; a metric ending in "accuracy" is maximized
    pruner: Literal["none", "median"] = "none"
    seed: int = Field(0, ge=0, le=MAX_SEED)
    space: dict[str, SearchParamConfig] = Field(default_factory=dict)
    configs: list[dict[str, Any]] = Field(default_factory=list)  # for strategy = "manual"

    @model_validator(mode="after")
    def _searchable(self) -> SearchConfig:
        if not self.space:
            raise ValueError('needs at least one key under [search.space], e.g. "optimizer.lr"')
        if self.strategy == "manual" and not self.configs:
            raise ValueError('strategy = "manual" needs configs = [{...}, ...]')
        if len(self.configs) > MAX_TRIALS:
            raise ValueError(f"at most {MAX_TRIALS} configs")
        for config in self.configs:
            for key in config:
                if key not in self.space:
                    raise ValueError(
                        f"configs: key {key!r} is not under [search.space]"
                        + did_you_mean(key, self.space)
                    )
        if self.strategy == "grid":
            points = 1
            for p in self.space.values():
                points *= len(p.choices) if p.choices is not None else self.q
            if points > MAX_TRIALS:
                raise ValueError(f"the grid has {points} points; at most {MAX_TRIALS} (lower q)")
        if self.strategy == "coarse-to-fine" and self.n_trials < self.rounds:
            raise ValueError(
                f"coarse-to-fine runs rounds = {self.rounds} rounds of at least one trial; "
                f"n_trials = {self.n_trials} is fewer"
            )
        return self


class EnsembleConfig(_Section):
    """`dlopt train` trains `members` models of this config one after another (seeds
    seed, seed + 1, …), each on a bootstrap resample of the training set when `bootstrap`,
    and reports the model average and the vote beside the members (SPEC G1, G2)."""

    members: int = Field(5, ge=2, le=100)
    bootstrap: bool = True
