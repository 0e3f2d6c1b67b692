"""The metric set against scikit-learn's metrics, and as a monitor (issue 18, part 4)."""

from __future__ import annotations

import pytest
import sklearn.metrics as skm
import torch
import torch.nn.functional as F

from dlopt.nn import mlp
from dlopt.train import Checkpoint, EarlyStopping, Trainer
from dlopt.train.scores import compute_metrics, metric

from .helpers import digits_small

CLASSIFICATION = {
    "accuracy": lambda y, scores: skm.accuracy_score(y, scores.argmax(-1)),
    "precision_macro": lambda y, s: skm.precision_score(
        y, s.argmax(-1), average="macro", zero_division=0
    ),
    "recall_macro": lambda y, s: skm.recall_score(
        y, s.argmax(-1), average="macro", zero_division=0
    ),
    "f1_macro": lambda y, s: skm.f1_score(y, s.argmax(-1), average="macro", zero_division=0),
    "top3_accuracy": lambda y, s: skm.top_k_accuracy_score(y, s, k=3, labels=range(s.shape[1])),
}
REGRESSION = {
    "mse": skm.mean_squared_error,
    "mae": skm.mean_absolute_error,
    "r2": skm.r2_score,
}


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("name", sorted(CLASSIFICATION))
def test_classification_metrics_equal_sklearn(name, seed):
    generator = torch.Generator().manual_seed(seed)
    n, classes = 60, 7
    scores = torch.randn(n, classes, generator=generator, dtype=torch.float64)
    # class 6 never occurs and some are rare: sklearn's labels and zero_division rules matter
    target = torch.randint(0, 6, (n,), generator=generator)
    ours = compute_metrics([name], scores, target, classification=True)[name]
    assert ours == pytest.approx(CLASSIFICATION[name](target.numpy(), scores.numpy()), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("name", sorted(REGRESSION))
@pytest.mark.parametrize("column", [False, True])
def test_regression_metrics_equal_sklearn(name, seed, column):
    generator = torch.Generator().manual_seed(seed)
    target = torch.randn(40, generator=generator, dtype=torch.float64)
    output = target + 0.5 * torch.randn(40, generator=generator, dtype=torch.float64)
    shown = output.unsqueeze(-1) if column else output  # a (n, 1) model output
    ours = compute_metrics([name], shown, target, classification=False)[name]
    assert ours == pytest.approx(REGRESSION[name](target.numpy(), output.numpy()), abs=1e-12)


def test_r2_of_a_constant_target_follows_sklearn_force_finite():
    y = torch.ones(5, dtype=torch.float64)
    for output in (y.clone(), y + 1):
        ours = compute_metrics(["r2"], output, y, classification=False)["r2"]
        assert ours == skm.r2_score(y.numpy(), output.numpy())


def test_a_metric_of_the_other_task_is_refused():
    with pytest.raises(ValueError, match="'f1_macro', which needs class targets"):
        compute_metrics(["f1_macro"], torch.randn(4, 1), torch.randn(4), classification=False)


def test_metric_names_and_modes():
    assert metric("f1_macro").mode == "max" and metric("mae").mode == "min"
    with pytest.raises(ValueError, match="Did you mean 'recall_macro'"):
        metric("recal_macro")


def test_logged_metrics_drive_early_stopping_and_checkpoint(tmp_path):
    splits = digits_small(256)
    torch.manual_seed(0)
    model = mlp(64, 10, (16,))
    stopper = EarlyStopping("val_f1_macro", mode="max", patience=2)
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), 1e-2),
        max_epochs=6,
        metrics=["f1_macro", "top2_accuracy"],
        callbacks=[stopper, Checkpoint(tmp_path, monitor="val_f1_macro", mode="max")],
    )
    trainer.fit(splits.train, splits.val)
    history = trainer.state.history
    assert all({"val_f1_macro", "val_top2_accuracy"} <= set(h) for h in history)
    best = max(h["val_f1_macro"] for h in history)
    assert stopper.best == best
    # early stopping restored the best epoch's weights; best.pt holds the same model
    out = trainer.predict(splits.val.X)
    expected = skm.f1_score(splits.val.y.numpy(), out.argmax(-1).numpy(), average="macro")
    assert expected == pytest.approx(best, abs=1e-12)
    saved = torch.load(tmp_path / "best.pt", weights_only=True)["model"]
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(saved[key], value), key


@pytest.mark.parametrize("samples", [7, 204, 1000])
@pytest.mark.parametrize("classes", [2, 10, 15, 16, 100])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_trainers_cross_entropy_is_torchs(samples, classes, smoothing):
    from dlopt.nn.losses import cross_entropy
    from dlopt.train.metrics import LOSSES, resolve_loss

    g = torch.Generator().manual_seed(samples + classes)
    for dtype, tol in ((torch.float32, 1e-6), (torch.float64, 1e-13)):
        out = torch.randn(samples, classes, generator=g, dtype=dtype, requires_grad=True)
        target = torch.randint(0, classes, (samples,), generator=g)
        loss = cross_entropy(out, target, label_smoothing=smoothing)
        (grad,) = torch.autograd.grad(loss, out)
        ref = F.cross_entropy(out, target, label_smoothing=smoothing)
        (grad_ref,) = torch.autograd.grad(ref, out)
        torch.testing.assert_close(loss, ref, rtol=tol, atol=0)
        torch.testing.assert_close(grad, grad_ref, rtol=tol, atol=tol * grad_ref.abs().max())
    assert LOSSES["cross_entropy"] is cross_entropy
    smoothed, classify = resolve_loss("auto", target, smoothing)
    with torch.no_grad():
        assert classify and float(smoothed(out, target)) == pytest.approx(float(ref), rel=1e-12)
