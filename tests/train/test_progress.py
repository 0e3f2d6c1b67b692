"""Progress as users expect it: a bar refreshed within epochs on a terminal, one line per epoch
elsewhere, early stopping and restored weights said once each, and silence where asked."""

from __future__ import annotations

import io
import logging

import torch

from dlopt.train import EarlyStopping, ProgressBar, Trainer, quiet_trainers


def _data(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 5, generator=g)
    return X, (X[:, 0] > 0).long()


def _trainer(stream: io.StringIO | None = None, **kwargs) -> Trainer:
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 2)
    callbacks = kwargs.pop("callbacks", [])
    if stream is not None:
        callbacks = [*callbacks, ProgressBar(stream=stream)]
    return Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.1), callbacks=callbacks, **kwargs
    )


def test_plain_lines_one_per_epoch_when_not_a_terminal():
    stream = io.StringIO()
    _trainer(stream, max_epochs=3, batch_size=16).fit(_data(), _data(32))
    lines = stream.getvalue().splitlines()
    assert [line.split(" · ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("val_loss" in line for line in lines)
    assert "s left" in lines[0] and "s left" not in lines[-1]


def test_early_stop_and_restored_weights_are_said_once_each_and_logged(caplog):
    stream = io.StringIO()
    trainer = _trainer(
        stream,
        max_epochs=50,
        batch_size=16,
        callbacks=[EarlyStopping(monitor="val_accuracy", mode="max", patience=1)],
    )
    with caplog.at_level(logging.INFO, logger="dlopt.train"):
        trainer.fit(_data(), _data(32))
    text = stream.getvalue()
    assert trainer.state.epoch < 50
    assert text.count("stopped early after epoch") == 1
    best = trainer.callbacks[0].best_epoch  # EarlyStopping, first in order
    if best != trainer.state.epoch:
        assert text.count(f"restored the best weights: epoch {best}") == 1
    logged = [r.getMessage() for r in caplog.records if r.name == "dlopt.train"]
    assert any(m.startswith("stopped early") for m in logged)


def test_default_progress_shows_and_quiet_trainers_or_false_silence_it(capsys):
    _trainer(max_epochs=2, batch_size=32).fit(_data())
    assert capsys.readouterr().err.count("epoch ") == 2
    with quiet_trainers():
        _trainer(max_epochs=2, batch_size=32).fit(_data())
    _trainer(max_epochs=2, batch_size=32, progress=False).fit(_data())
    assert capsys.readouterr().err == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_moves_within_an_epoch(monkeypatch):
    import dlopt.train.progress as progress

    monkeypatch.setattr(progress, "REFRESH_S", 0.0)
    seen: list[float] = []

    class Spy(ProgressBar):
        def on_batch_end(self, trainer):
            super().on_batch_end(trainer)
            seen.append(self._progress.tasks[0].completed)

    torch.manual_seed(0)
    model = torch.nn.Linear(5, 2)
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        max_epochs=2,
        batch_size=8,
        callbacks=[Spy(stream=_Terminal())],
    )
    trainer.fit(_data())
    assert seen == [float(i) for i in range(1, 17)]  # 8 batches per epoch, every one shown
