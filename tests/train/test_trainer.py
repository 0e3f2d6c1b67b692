import math

import pytest
import torch
import torch.nn.functional as F

from dlopt.data import Batches, polynomial, split_dataset
from dlopt.errors import TrainingDiverged
from dlopt.nn import mlp
from dlopt.train import Callback, Checkpoint, EarlyStopping, Trainer, load_checkpoint

from .helpers import digits_small, stochastic_model


def test_fit_learns_and_logs_history():
    splits = digits_small(512)
    model = stochastic_model()
    trainer = Trainer(
        model, torch.optim.Adam(model.parameters(), 3e-3), max_epochs=8, batch_size=32
    )
    state = trainer.fit(splits.train, splits.val)
    assert state.epoch == 8 and state.step == 8 * math.ceil(512 / 32)
    assert [h["epoch"] for h in state.history] == list(range(1, 9))
    assert state.history[-1]["loss"] < 0.5 * state.history[0]["loss"]
    assert trainer.evaluate(splits.test)["accuracy"] > 0.85
    assert trainer.predict(splits.test.X).shape == (len(splits.test), 10)
    assert model.training  # evaluate/predict restore the mode they found


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses():
    X, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    model = mlp(3, 2, (4,))
    seen = []

    def loss(out, target):
        value = F.cross_entropy(out, target)
        seen.append((value.item(), len(target)))
        return value

    Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.0), loss=loss, max_epochs=1, batch_size=4
    ).fit((X, y))
    # lr 0 keeps the weights: the logged loss is Σ loss_b·n_b / n
    expected = sum(v * n for v, n in seen) / 10
    trainer = Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.0), max_epochs=1, batch_size=4
    )
    assert trainer.fit((X, y)).history[0]["loss"] == pytest.approx(expected, rel=1e-6)


def test_device_and_dtype_follow_the_model():
    data = polynomial(n=64, seed=0)
    model = mlp(1, 1, (8,)).double()
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), 1e-2), max_epochs=3)
    trainer.fit(data)
    assert trainer.predict(data.X).dtype == torch.float64


def test_lbfgs_gets_a_closure_and_fits_full_batch_regression():
    splits = split_dataset(polynomial(n=200, noise=0.05, seed=0), seed=0)
    torch.manual_seed(0)
    model = mlp(1, 1, (32,), activation="tanh")
    optimizer = torch.optim.LBFGS(model.parameters(), line_search_fn="strong_wolfe")
    trainer = Trainer(model, optimizer, max_epochs=30, batch_size=1000)
    state = trainer.fit(splits.train, splits.val)
    assert state.history[-1]["val_loss"] < 0.01  # noise variance 0.0025 on a standardized x


def test_schedulers_step_once_per_epoch():
    model = mlp(3, 2, (4,))
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    state = Trainer(model, opt, scheduler=sched, max_epochs=5, batch_size=8).fit(
        (torch.randn(16, 3), torch.randint(0, 2, (16,)))
    )
    assert [h["lr"] for h in state.history] == [1.0, 1.0, 0.5, 0.5, 0.25]


class _Fake:
    def __init__(self, values):
        self.values = list(values)
        self.model = torch.nn.Linear(1, 1)
        self.state = type("S", (), {"metrics": {}, "epoch": 0})()
        self.stopped = None

    def request_stop(self, reason):
        self.stopped = reason


def _drive(es, values):
    fake = _Fake(values)
    for epoch, value in enumerate(values, 1):
        fake.state.epoch = epoch
        fake.state.metrics = {"val_loss": value, "val_accuracy": value}
        with torch.no_grad():
            fake.model.weight.fill_(epoch)
        es.on_epoch_end(fake)
        if fake.stopped:
            break
    es.on_fit_end(fake)
    return fake


def test_early_stopping_patience_min_delta_mode_and_restore():
    es = EarlyStopping("val_loss", patience=2)
    fake = _drive(es, [3.0, 2.0, 2.5, 2.4, 1.0])
    assert es.stopped_epoch == 4 and es.best_epoch == 2 and fake.model.weight.item() == 2
    es = EarlyStopping("val_loss", patience=2, min_delta=0.5)
    _drive(es, [3.0, 2.8, 2.6, 1.0])  # improvements smaller than min_delta do not count
    assert es.stopped_epoch == 3 and es.best_epoch == 1
    es = EarlyStopping("val_accuracy", mode="max", patience=1)
    _drive(es, [0.5, 0.7, 0.6])
    assert es.best == 0.7 and es.stopped_epoch == 3
    with pytest.raises(ValueError, match="not logged"):
        _drive(EarlyStopping("val_f1"), [1.0])
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="down")


class _StopAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer):
        if trainer.state.step == self.step:
            trainer.request_stop("test")


def _poisoned_loss(trainer_ref, step, value):
    def loss(out, target):
        result = F.cross_entropy(out, target)
        if trainer_ref[0].state.step + 1 == step:
            result = result * value
        return result

    return loss


def _best_weights_case(ending, tmp_path):
    splits = digits_small(256)
    model = stochastic_model()
    es = EarlyStopping("val_loss", patience=2 if ending == "patience" else 100)
    holder = []
    loss = _poisoned_loss(holder, 40, math.nan) if ending == "nan" else "auto"
    callbacks = [es] + ([_StopAt(45)] if ending == "interrupt" else [])
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), 0.05),
        loss=loss,
        max_epochs=60 if ending == "patience" else 6,
        batch_size=32,
        callbacks=callbacks,
    )
    holder.append(trainer)
    if ending == "interrupt":
        trainer.state.interrupted = 2  # what the SIGINT handler records
    try:
        trainer.fit(splits.train, splits.val)
    except TrainingDiverged:
        assert ending == "nan"
    return trainer, es


@pytest.mark.parametrize("ending", ["patience", "max_epochs", "nan", "interrupt"])
def test_best_weights_are_restored_however_the_run_ends(ending, tmp_path):
    """RELIABILITY R8: patience, max epochs, a NaN stop, SIGINT."""
    trainer, es = _best_weights_case(ending, tmp_path)
    assert es.best_weights is not None
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, es.best_weights[key]), key
    if ending == "patience":
        assert es.stopped_epoch < 60


@pytest.mark.parametrize(
    ("step", "value"),
    [
        (3, math.nan),
        (7, math.inf),
        (11, -math.inf),
        (13, math.nan),
        (16, math.nan),
        (19, math.inf),
        (22, math.nan),
        (25, math.nan),
        (29, math.inf),
        (31, math.nan),
    ],
)
def test_nan_loss_is_caught_before_the_step(step, value, tmp_path):
    """RELIABILITY N1: detected at the same step, weights untouched, last checkpoint kept."""
    splits = digits_small(256)
    model = stochastic_model()
    holder = []
    snapshots = {}

    class Snap(Callback):
        def on_batch_end(self, trainer):
            snapshots[trainer.state.step] = {k: v.clone() for k, v in model.state_dict().items()}

    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), 1e-3),
        max_epochs=5,
        batch_size=32,
        loss=_poisoned_loss(holder, step, value),
        callbacks=[Snap(), Checkpoint(tmp_path, every_steps=1)],
    )
    holder.append(trainer)
    with pytest.raises(TrainingDiverged, match=rf"loss became (NaN|inf) at epoch \d step {step};"):
        trainer.fit(splits.train)
    assert trainer.state.step == step - 1
    last_good = snapshots[step - 1]
    for key, tensor in model.state_dict().items():
        if key.endswith("num_batches_tracked") or "running" in key:
            continue  # BN statistics move in the forward pass; the optimizer never stepped
        assert torch.equal(tensor, last_good[key]), key
    payload, used = load_checkpoint(tmp_path / "checkpoint.pt")
    assert used == tmp_path / "checkpoint.pt" and payload["state"]["step"] == step - 1


def test_nan_gradient_with_finite_loss_is_caught():
    """RELIABILITY N2: sqrt at 0 gives a NaN gradient while the loss stays finite."""
    model = mlp(4, 2, (3,))
    holder = []
    param = next(model.parameters())

    def loss(out, target):
        value = F.cross_entropy(out, target)
        if holder[0].state.step == 2:
            value = value + torch.sqrt(((param - param.detach()) ** 2).sum())
        return value

    trainer = Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.1), loss=loss, max_epochs=2, batch_size=4
    )
    holder.append(trainer)
    before = {}

    class Snap(Callback):
        def on_batch_end(self, trainer):
            before.update({k: v.clone() for k, v in model.state_dict().items()})

    trainer.callbacks.append(Snap())
    trainer._hooks["on_batch_end"].append(trainer.callbacks[-1])
    with pytest.raises(
        TrainingDiverged,
        match=r"gradient of 1\.weight became non-finite at "
        r"epoch 1 step 3",
    ):
        trainer.fit((torch.randn(16, 4), torch.randint(0, 2, (16,))))
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_closure_optimizer_divergence_restores_parameters():
    model = mlp(2, 1, (4,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def loss(out, target):
        calls.append(1)
        value = F.mse_loss(out.squeeze(-1), target)
        return value * math.nan if len(calls) >= 3 else value

    trainer = Trainer(
        model, torch.optim.LBFGS(model.parameters()), loss=loss, max_epochs=1, batch_size=100
    )
    with pytest.raises(TrainingDiverged, match="loss became NaN"):
        trainer.fit((torch.randn(20, 2), torch.randn(20)))
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_trainer_validates_arguments():
    model = mlp(2, 2)
    with pytest.raises(TypeError, match="batch_size"):
        Trainer(model, batch_size=2.0)
    with pytest.raises(ValueError, match=r"loss=\.\.\.\) must be one of"):
        Trainer(model, loss="hinge").fit((torch.randn(4, 2), torch.randint(0, 2, (4,))))
    with pytest.raises(ValueError, match="same length"):
        Batches(torch.randn(3, 1), torch.randn(2), 2)


def test_a_line_search_optimizer_on_a_model_with_dropout_is_warned(caplog):
    from dlopt.optim import LBFGS

    X, y = torch.randn(20, 2), torch.randn(20)
    for dropout, warned in ((0.3, True), (0.0, False)):
        caplog.clear()
        model = mlp(2, 1, (4,), dropout=dropout)
        Trainer(model, LBFGS(model.parameters(), max_iter=2), max_epochs=1).fit((X, y))
        assert ("draw fresh noise" in caplog.text) is warned, caplog.text
        if warned:
            assert "Dropout, p=0.3" in caplog.text
    caplog.clear()
    model = mlp(2, 1, (4,), dropout=0.3)  # first-order: each step sees one draw
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), max_epochs=1).fit((X, y))
    assert "fresh noise" not in caplog.text


def test_a_nonfinite_trial_step_of_dlopts_line_search_is_not_divergence():
    """dlopt's second-order methods reject a trial step whose loss is NaN (the line search
    shrinks it); the guard stops the run only when the loss where they stopped is not finite."""
    from dlopt.optim import LBFGS

    torch.manual_seed(0)
    model = mlp(2, 1, (4,))
    X, y = torch.randn(20, 2), torch.randn(20)
    trials = []

    def loss(out, target):  # NaN beyond a radius that the first trial step overshoots
        value = F.mse_loss(out.squeeze(-1), target)
        radius = sum(float(p.detach().pow(2).sum()) for p in model.parameters())
        trials.append(radius)
        return value * math.nan if len(trials) == 2 else value

    trainer = Trainer(model, LBFGS(model.parameters(), max_iter=5), loss=loss, max_epochs=2)
    state = trainer.fit((X, y))
    assert len(state.history) == 2 and math.isfinite(state.history[-1]["loss"])
    assert all(bool(p.isfinite().all()) for p in model.parameters())

    def always_nan(out, target):
        return F.mse_loss(out.squeeze(-1), target) * math.nan

    model = mlp(2, 1, (4,))
    trainer = Trainer(model, LBFGS(model.parameters()), loss=always_nan, max_epochs=1)
    with pytest.raises(TrainingDiverged, match="loss became NaN"):
        trainer.fit((X, y))
