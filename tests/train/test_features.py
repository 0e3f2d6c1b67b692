"""Training features against torch's own implementations (issue 18, part 4): gradient-norm
clipping, label smoothing, warm-up and one-cycle schedules, SWA and bfloat16 autocast."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel

from dlopt.data import Batches
from dlopt.nn import mlp, recalibrate_batchnorm
from dlopt.train import SWA, Callback, EarlyStopping, Trainer, one_cycle, warmup_cosine

from .helpers import digits_small

EPOCHS, BATCH = 3, 32


def _data():
    splits = digits_small(256)
    return splits.train.X.float(), splits.train.y


def _twins(batch_norm: bool = False) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    a = mlp(64, 10, (32,), batch_norm=batch_norm)
    b = mlp(64, 10, (32,), batch_norm=batch_norm)
    b.load_state_dict(a.state_dict())
    return a, b


def _manual(
    model,
    optimizer,
    X,
    y,
    *,
    epochs=EPOCHS,
    loss_fn=F.cross_entropy,
    after_backward=None,
    per_step=None,
    per_epoch=None,
    forward=None,
):
    """The textbook loop over the trainer's own batch order (Batches with seed 0)."""
    batches = Batches(X, y, BATCH, seed=0)
    for epoch in range(epochs):
        model.train()
        for xb, yb in batches.epoch(epoch):
            optimizer.zero_grad(set_to_none=True)
            loss = forward(model, xb, yb) if forward else loss_fn(model(xb), yb)
            loss.backward()
            if after_backward:
                after_backward()
            optimizer.step()
            if per_step:
                per_step()
        if per_epoch:
            per_epoch(epoch)


def _assert_same(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)


def test_clip_grad_norm_equals_torch_clip_grad_norm_():
    X, y = _data()
    ours, theirs = _twins()
    Trainer(
        ours,
        torch.optim.SGD(ours.parameters(), 0.5),
        max_epochs=EPOCHS,
        batch_size=BATCH,
        clip_grad_norm=0.25,
    ).fit((X, y))
    _manual(
        theirs,
        torch.optim.SGD(theirs.parameters(), 0.5),
        X,
        y,
        after_backward=lambda: torch.nn.utils.clip_grad_norm_(theirs.parameters(), 0.25),
    )
    _assert_same(ours, theirs)


def test_label_smoothing_equals_cross_entropy_loss_label_smoothing():
    X, y = _data()
    ours, theirs = _twins()
    trainer = Trainer(
        ours,
        torch.optim.Adam(ours.parameters(), 1e-2),
        max_epochs=EPOCHS,
        batch_size=BATCH,
        label_smoothing=0.1,
    )
    trainer.fit((X, y))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    _manual(theirs, torch.optim.Adam(theirs.parameters(), 1e-2), X, y, loss_fn=criterion)
    _assert_same(ours, theirs)
    with torch.no_grad():
        expected = float(criterion(theirs.eval()(X), y))
    assert trainer.evaluate((X, y))["loss"] == pytest.approx(expected, rel=1e-6)


class LRTrace(Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_batch_end(self, trainer):
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize("kind", ["warmup_cosine", "one_cycle"])
def test_per_step_schedules_equal_torch_sequential_lr_and_one_cycle_lr(kind):
    X, y = _data()
    ours, theirs = _twins()
    steps = EPOCHS * -(-len(X) // BATCH)

    def schedule(optimizer):
        if kind == "one_cycle":
            return one_cycle(optimizer, steps, pct_start=0.25)
        return warmup_cosine(optimizer, 5, steps, start_factor=0.1)

    def reference(optimizer):  # torch's classes, built by hand
        if kind == "one_cycle":
            return torch.optim.lr_scheduler.OneCycleLR(
                optimizer, 0.05, total_steps=steps, pct_start=0.25
            )
        lr = torch.optim.lr_scheduler
        cosine = lr.CosineAnnealingLR(optimizer, steps - 5)
        rise = lr.LinearLR(optimizer, 0.1, 1.0, total_iters=5)
        return lr.SequentialLR(optimizer, [rise, cosine], milestones=[5])

    opt = torch.optim.SGD(ours.parameters(), 0.05, momentum=0.9)
    trace = LRTrace()
    Trainer(
        ours,
        opt,
        max_epochs=EPOCHS,
        batch_size=BATCH,
        scheduler=schedule(opt),
        scheduler_interval="step",
        callbacks=[trace],
    ).fit((X, y))
    ref_opt = torch.optim.SGD(theirs.parameters(), 0.05, momentum=0.9)
    ref_sched = reference(ref_opt)
    ref_lrs: list[float] = []

    def per_step():
        ref_sched.step()
        ref_lrs.append(ref_opt.param_groups[0]["lr"])

    _manual(theirs, ref_opt, X, y, per_step=per_step)
    assert trace.lrs == ref_lrs
    _assert_same(ours, theirs)


def test_swa_equals_torch_swa_utils_recipe_with_exact_bn_statistics():
    X, y = _data()
    ours, theirs = _twins(batch_norm=True)
    epochs, start = 5, 2
    opt = torch.optim.SGD(ours.parameters(), 0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    Trainer(
        ours,
        opt,
        max_epochs=epochs,
        batch_size=BATCH,
        scheduler=sched,
        swa=SWA(0.05, start=start, anneal_epochs=2),
    ).fit((X, y))

    ref_opt = torch.optim.SGD(theirs.parameters(), 0.1, momentum=0.9)
    ref_sched = torch.optim.lr_scheduler.StepLR(ref_opt, 1, 0.5)
    averaged = AveragedModel(theirs)
    swa_sched = SWALR(ref_opt, swa_lr=0.05, anneal_epochs=2)

    def per_epoch(epoch):  # torch's documented recipe
        if epoch >= start:
            averaged.update_parameters(theirs)
            swa_sched.step()
        else:
            ref_sched.step()

    _manual(theirs, ref_opt, X, y, epochs=epochs, per_epoch=per_epoch)
    for p, q in zip(ours.parameters(), averaged.module.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    # BN: the exact mean and unbiased variance of the BN input over the training set
    bn = next(m for m in ours.modules() if isinstance(m, nn.BatchNorm1d))
    inputs: list[torch.Tensor] = []
    hook = bn.register_forward_pre_hook(lambda mod, args: inputs.append(args[0].detach()))
    with torch.no_grad():
        ours.eval()(X)
    hook.remove()
    features = inputs[0].double()
    torch.testing.assert_close(bn.running_mean, features.mean(0).float())
    torch.testing.assert_close(bn.running_var, features.var(0).float())
    recalibrate_batchnorm(averaged.module, X.split(BATCH), mode="exact")
    _assert_same(ours, averaged.module)


def test_a_per_step_schedule_resumes_exactly_mid_epoch(tmp_path):
    from dlopt.train import Checkpoint

    from .test_sources import Interrupt

    X, y = _data()

    def run(folder, interrupt=None):
        torch.manual_seed(0)
        model = mlp(64, 10, (32,))
        opt = torch.optim.SGD(model.parameters(), 0.05, momentum=0.9)
        callbacks = [Checkpoint(folder)] + ([interrupt] if interrupt else [])
        return Trainer(
            model,
            opt,
            max_epochs=EPOCHS,
            batch_size=BATCH,
            callbacks=callbacks,
            scheduler=one_cycle(opt, EPOCHS * 8),
            scheduler_interval="step",
        )

    reference = run(tmp_path / "ref")
    reference.fit((X, y))
    first = run(tmp_path / "run", Interrupt(11))
    first.fit((X, y))
    resumed = run(tmp_path / "run")
    resumed.fit((X, y), resume_from=tmp_path / "run" / "checkpoint.pt")
    _assert_same(resumed.model, reference.model)
    assert resumed.optimizer.param_groups[0]["lr"] == reference.optimizer.param_groups[0]["lr"]


def test_swa_refuses_early_stopping_that_restores_weights():
    X, y = _data()
    model = mlp(64, 10, (8,))
    trainer = Trainer(
        model, max_epochs=1, swa=SWA(0.01, start=0), callbacks=[EarlyStopping("loss")]
    )
    with pytest.raises(ValueError, match="restore_best_weights=False"):
        trainer.fit((X, y))


def test_bfloat16_autocast_on_cpu_equals_a_manual_autocast_loop():
    X, y = _data()
    ours, theirs = _twins()
    Trainer(
        ours,
        torch.optim.Adam(ours.parameters(), 1e-2),
        max_epochs=EPOCHS,
        batch_size=BATCH,
        mixed_precision=True,
    ).fit((X, y))

    def forward(model, xb, yb):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return F.cross_entropy(model(xb), yb)

    _manual(theirs, torch.optim.Adam(theirs.parameters(), 1e-2), X, y, forward=forward)
    _assert_same(ours, theirs)
    assert all(p.dtype == torch.float32 for p in ours.parameters())  # master weights stay


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clip_grad_norm": 0.0}, "clip_grad_norm"),
        ({"clip_grad_norm": float("nan")}, "clip_grad_norm"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"label_smoothing": 0.1, "loss": F.cross_entropy}, "label_smoothing"),
        ({"scheduler_interval": "batch"}, "scheduler_interval"),
        ({"metrics": ["f2_macro"]}, "f1_macro"),
    ],
)
def test_bad_options_name_the_option(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Trainer(mlp(64, 10, (8,)), **kwargs)


def test_per_step_plateau_is_refused():
    model = mlp(64, 10, (8,))
    opt = torch.optim.SGD(model.parameters(), 0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    with pytest.raises(ValueError, match="cannot step ReduceLROnPlateau"):
        Trainer(model, opt, scheduler=plateau, scheduler_interval="step")


def test_mixed_precision_and_clipping_refuse_closure_optimizers():
    from dlopt.optim import LBFGS

    model = mlp(64, 10, (8,))
    with pytest.raises(ValueError, match="first-order"):
        Trainer(model, LBFGS(model.parameters()), mixed_precision=True)


def test_label_smoothing_of_regression_targets_is_refused():
    X = torch.randn(16, 64)
    with pytest.raises(ValueError, match="label_smoothing"):
        Trainer(mlp(64, 1, (8,)), label_smoothing=0.1, max_epochs=1).fit((X, X[:, 0]))


def test_swa_run_resumes_exactly_mid_average(tmp_path):
    from dlopt.train import Checkpoint

    from .test_sources import Interrupt

    X, y = _data()

    def run(folder, interrupt=None):
        torch.manual_seed(0)
        model = mlp(64, 10, (32,), batch_norm=True)
        opt = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9)
        callbacks = [Checkpoint(folder)] + ([interrupt] if interrupt else [])
        return Trainer(
            model, opt, max_epochs=4, batch_size=BATCH, callbacks=callbacks, swa=SWA(0.05, start=1)
        )

    reference = run(tmp_path / "ref")
    reference.fit((X, y))
    first = run(tmp_path / "run", Interrupt(22))  # epoch 3 of 4, after two averages
    first.fit((X, y))
    assert first.state.interrupted
    resumed = run(tmp_path / "run")
    resumed.fit((X, y), resume_from=tmp_path / "run" / "checkpoint.pt")
    _assert_same(resumed.model, reference.model)
    assert resumed.state.history == reference.state.history


@pytest.mark.skipif(not torch.cuda.is_available(), reason="float16 + GradScaler needs CUDA")
def test_float16_autocast_with_grad_scaler_on_cuda_equals_a_manual_amp_loop():
    X, y = (t.cuda() for t in _data())
    ours, theirs = (m.cuda() for m in _twins())
    Trainer(
        ours,
        torch.optim.Adam(ours.parameters(), 1e-2),
        max_epochs=EPOCHS,
        batch_size=BATCH,
        mixed_precision=True,
        clip_grad_norm=1.0,
    ).fit((X, y))
    optimizer = torch.optim.Adam(theirs.parameters(), 1e-2)
    scaler = torch.amp.GradScaler("cuda")
    batches = Batches(X, y, BATCH, seed=0)
    for epoch in range(EPOCHS):
        for xb, yb in batches.epoch(epoch):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.float16):
                loss = F.cross_entropy(theirs(xb), yb)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p, q)
