"""The metric set a run can log and monitor: classification (accuracy, top-k accuracy, macro
precision, recall and F1) and regression (MSE, MAE, R²), computed from a whole split's outputs.

Each agrees with scikit-learn's function of the same name: macro averages run over the classes
present in the targets or the predictions (sklearn's default ``labels``), a class never
predicted has precision 0 (``zero_division=0``), and R² of a constant target is 1 for a perfect
fit and 0 otherwise (``force_finite=True``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from dlopt._validation import did_you_mean
from dlopt.errors import InvalidParameterError


@dataclass(frozen=True)
class Metric:
    """`fn(output, target) -> float`; `mode` is the better direction ("max" or "min")."""

    fn: Callable[[Tensor, Tensor], float]
    mode: str
    classification: bool


def _accuracy(output: Tensor, target: Tensor) -> float:
    return float((output.argmax(-1) == target).double().mean())


def top_k_accuracy(output: Tensor, target: Tensor, k: int) -> float:
    """Share of samples whose class is among the `k` highest scores (sklearn
    ``top_k_accuracy_score``; ties broken as ``torch.topk`` does)."""
    k = min(k, output.shape[-1])
    top = output.topk(k, dim=-1).indices  # (n, k)
    return float((top == target.unsqueeze(-1)).any(-1).double().mean())


def _confusion_counts(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(true positives, predicted count, true count) per class present in either."""
    predicted = output.argmax(-1)
    classes = max(int(output.shape[-1]), int(target.max()) + 1, int(predicted.max()) + 1)
    tp = torch.bincount(target[predicted == target], minlength=classes).double()
    n_pred = torch.bincount(predicted, minlength=classes).double()
    n_true = torch.bincount(target, minlength=classes).double()
    present = (n_pred + n_true) > 0
    return tp[present], n_pred[present], n_true[present]


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / den.clamp_min(1), torch.zeros_like(num))


def precision_macro(output: Tensor, target: Tensor) -> float:
    tp, n_pred, _ = _confusion_counts(output, target)
    return float(_ratio(tp, n_pred).mean())


def recall_macro(output: Tensor, target: Tensor) -> float:
    tp, _, n_true = _confusion_counts(output, target)
    return float(_ratio(tp, n_true).mean())


def f1_macro(output: Tensor, target: Tensor) -> float:
    """Mean over classes of 2·TP / (2·TP + FP + FN), the harmonic mean of precision and recall."""
    tp, n_pred, n_true = _confusion_counts(output, target)
    return float(_ratio(2 * tp, n_pred + n_true).mean())


def _column(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if output.dim() == target.dim() + 1 and output.shape[-1] == 1:
        output = output.squeeze(-1)
    return output.double(), target.double()


def mse(output: Tensor, target: Tensor) -> float:
    out, y = _column(output, target)
    return float(((out - y) ** 2).mean())


def mae(output: Tensor, target: Tensor) -> float:
    out, y = _column(output, target)
    return float((out - y).abs().mean())


def r2(output: Tensor, target: Tensor) -> float:
    """1 − SS_res / SS_tot, averaged uniformly over output columns."""
    out, y = _column(output, target)
    ss_res = ((y - out) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    score = torch.where(ss_tot > 0, 1 - ss_res / ss_tot.clamp_min(1e-300), (ss_res == 0).double())
    return float(score.mean())


METRICS: dict[str, Metric] = {
    "accuracy": Metric(_accuracy, "max", True),
    "precision_macro": Metric(precision_macro, "max", True),
    "recall_macro": Metric(recall_macro, "max", True),
    "f1_macro": Metric(f1_macro, "max", True),
    "mse": Metric(mse, "min", False),
    "mae": Metric(mae, "min", False),
    "r2": Metric(r2, "max", False),
}
_TOP_K = re.compile(r"top([1-9][0-9]*)_accuracy")


METRIC_NAMES = [*METRICS, "top{k}_accuracy"]


def is_metric(name: str) -> bool:
    return name in METRICS or _TOP_K.fullmatch(name) is not None


def metric(name: str, *, caller: str = "Trainer") -> Metric:
    """The metric called `name`: a key of :data:`METRICS`, or ``top{k}_accuracy``."""
    if not isinstance(name, str):
        raise InvalidParameterError(f"{caller}(metrics=...) must hold metric names; got {name!r}.")
    if name in METRICS:
        return METRICS[name]
    match = _TOP_K.fullmatch(name)
    if match:
        k = int(match.group(1))
        return Metric(lambda out, y: top_k_accuracy(out, y, k), "max", True)
    raise InvalidParameterError(
        f"{caller}(metrics=...) must name metrics among {METRIC_NAMES}; got {name!r}."
        + did_you_mean(name, METRIC_NAMES)
    )


def check_metrics(names: Sequence[str], *, caller: str = "Trainer") -> tuple[str, ...]:
    if isinstance(names, str):
        raise InvalidParameterError(
            f"{caller}(metrics=...) must be a sequence of names; got {names!r}."
        )
    for name in names:
        metric(name, caller=caller)
    return tuple(names)


def compute_metrics(
    names: Sequence[str], output: Tensor, target: Tensor, classification: bool
) -> dict[str, float]:
    """`names` evaluated on a whole split's outputs; a classification metric on float targets
    (or the reverse) is a ValueError."""
    scores = {}
    for name in names:
        m = metric(name)
        if m.classification != classification:
            kind = "class" if m.classification else "real-valued"
            raise InvalidParameterError(
                f"Trainer(metrics=...) holds {name!r}, which needs {kind} targets; this data's "
                f"targets are {target.dtype}."
            )
        scores[name] = m.fn(output, target)
    return scores
