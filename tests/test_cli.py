"""The command line end to end: train, datasets, reproduce, bench."""

from __future__ import annotations

import csv
import importlib.util
import json
import math

import pytest
import torch

from dlopt.benchmarks import run_benchmark
from dlopt.cli import main

from .conftest import ROOT, assert_one_error_line


def test_train_digits_example_reaches_097_and_writes_every_file(tmp_path, capsys):
    """Issue #2: `dlopt train examples/digits_mlp.toml` reaches ≥ 0.97 test accuracy."""
    out = tmp_path / "run"
    assert (
        main(["train", str(ROOT / "examples" / "digits_mlp.toml"), "--out", str(out), "--quiet"])
        == 0
    )
    for name in (
        "history.csv",
        "history.json",
        "checkpoint.pt",
        "best.pt",
        "metrics.json",
        "curves.png",
    ):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.97, metrics
    rows = list(csv.DictReader((out / "history.csv").read_text().splitlines()))
    assert len(rows) == metrics["epochs"] and {"loss", "val_loss", "val_accuracy", "lr"} <= set(
        rows[0]
    )
    assert (out / "curves.png").read_bytes().startswith(b"\x89PNG")
    # a second plain run refuses to overwrite the run; --resume of a finished run does nothing
    capsys.readouterr()
    assert main(["train", str(ROOT / "examples" / "digits_mlp.toml"), "--out", str(out)]) == 2
    assert_one_error_line(capsys.readouterr().err, "already holds a run")
    assert (
        main(
            [
                "train",
                str(ROOT / "examples" / "digits_mlp.toml"),
                "--out",
                str(out),
                "--resume",
                "--quiet",
            ]
        )
        == 0
    )
    again = json.loads((out / "metrics.json").read_text())
    assert (
        again["epochs"] == metrics["epochs"] and again["test_accuracy"] == metrics["test_accuracy"]
    )


def test_polynomial_example_regresses(tmp_path):
    out = tmp_path / "poly"
    assert (
        main(["train", str(ROOT / "examples" / "polynomial.toml"), "--out", str(out), "--quiet"])
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert "test_accuracy" not in metrics and metrics["test_loss"] < 0.05  # noise var 0.01


def test_resume_without_a_checkpoint_is_refused_never_a_fresh_start(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('[data]\nname = "wine"\n[train]\nepochs = 1\n')
    assert main(["train", str(config), "--out", str(tmp_path / "o"), "--resume"]) == 2
    assert_one_error_line(capsys.readouterr().err, "no checkpoint to resume from")


def test_datasets_list_and_show(tmp_path, capsys):
    assert main(["datasets"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("digits", "mnist1d", "polynomial", "diabetes"))
    path = tmp_path / "mine.csv"
    path.write_text("f1,f2,kind\n" + "".join(f"{i},{i * 2},{i % 3}\n" for i in range(30)))
    assert main(["datasets", "show", str(path), "--label", "kind"]) == 0
    shown = capsys.readouterr().out
    assert "samples     30" in shown and "classes     3" in shown and "splits" in shown


def test_bench_lists_and_runs_with_finite_ratios(capsys):
    assert main(["bench"]) == 0
    assert "trainer" in capsys.readouterr().out
    report = run_benchmark("trainer", repeats=1, echo=False)
    names = [t.name for t in report.timings]
    assert names[:2] == ["dlopt Trainer.fit", "dlopt Trainer.fit (DataLoader)"] and len(names) == 4
    assert all(math.isfinite(report.ratio(n)) and report.ratio(n) > 0 for n in names)
    assert main(["bench", "nope"]) == 2


def test_a_bench_report_as_json_keeps_every_run_and_its_data(tmp_path):
    from dlopt.benchmarks import BenchReport, Timing

    report = BenchReport(
        "t",
        "run",
        [Timing("a", [0.3, 0.1, 0.2]), Timing("b", [0.4])],
        baseline="b",
        data={"runs": {"p lbfgs": {"lbfgs": [{"seconds": 0.1, "nfev": 7}]}}},
    )
    as_json = json.loads(json.dumps(report.to_json()))
    a, b = as_json["timings"]
    assert a["seconds"] == [0.3, 0.1, 0.2] and a["median_s"] == 0.2 and a["min_s"] == 0.1
    assert a["ratio"] == 0.5 and b["ratio"] == 1.0
    assert as_json["data"]["runs"]["p lbfgs"]["lbfgs"][0]["nfev"] == 7
    assert "data" not in BenchReport("t", "run", [Timing("b", [0.4])], baseline="b").to_json()
    from dlopt.benchmarks.harness import write_json

    failed = BenchReport(
        "t",
        "run",
        [Timing("a", [float("nan")]), Timing("b", [0.4])],
        baseline="b",
        data={"gnorm": [float("inf"), 1e-6]},
    )
    write_json(failed.to_json(), tmp_path / "strict.json")

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the JSON")

    strict = json.loads((tmp_path / "strict.json").read_text(), parse_constant=refuse)
    assert strict["timings"][0]["seconds"] == [None] and strict["timings"][0]["median_s"] is None
    assert strict["data"]["gnorm"] == [None, 1e-6]
    path = tmp_path / "trainer.json"
    written = run_benchmark("trainer", repeats=1, echo=False, json_path=path)
    on_disk = json.loads(path.read_text())
    assert [t["name"] for t in on_disk["timings"]] == [t.name for t in written.timings]
    assert [t["seconds"] for t in on_disk["timings"]] == [t.seconds for t in written.timings]


def test_ensemble_bench_times_stacked_and_one_by_one_training():
    report = run_benchmark("ensemble", repeats=1, echo=False)
    names = [t.name for t in report.timings]
    assert names == [
        f"{m} members, {how}"
        for m in (5, 8, 20)
        for how in ("stacked (dlopt)", "stacked by vmap", "one by one")
    ]
    assert all(math.isfinite(report.ratio(n)) and report.ratio(n) > 0 for n in names)


def test_augment_bench_times_each_augmentation_batched_and_per_image():
    report = run_benchmark("augment", repeats=1, echo=False)
    names = [t.name for t in report.timings]
    kornia = importlib.util.find_spec("kornia") is not None  # a row each for affine, crop
    assert len(names) == 8 + 2 * kornia and sum("batched" in n for n in names) == 4
    assert sum("dlopt / kornia" in note for note in report.notes) == 2 * kornia
    assert all(math.isfinite(report.ratio(n)) and report.ratio(n) > 0 for n in names)
    assert sum("per-image loop / batched" in note for note in report.notes) == 4


@pytest.mark.parametrize(
    "argv",
    [
        ["train"],
        ["bogus"],
        ["train", "x.toml", "--epochs", "3"],
        ["reproduce", "--only", "Q7"],
        ["bench", "--repeats", "0"],
        ["bench", "optim", "--device", "bogus"],
        ["bench", "linear", "--device", "meta"],  # a real device, but not one linear runs on
    ],
)
def test_usage_errors_are_one_line(argv, capsys):
    assert main(argv) == 2
    assert_one_error_line(capsys.readouterr().err)


def test_a_bench_json_that_cannot_be_written_is_refused_before_the_bench_runs(
    tmp_path, capsys, monkeypatch
):
    from dlopt.benchmarks import harness

    ran = []
    monkeypatch.setitem(
        harness.BENCHMARKS,
        "trainer",
        harness.Benchmark(
            "trainer",
            "probe",
            lambda *a: ran.append(1) or None,
            ("cpu",),  # type: ignore[arg-type]
        ),
    )
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for target, says in ((tmp_path, "is a folder"), (a_file / "sub" / "out.json", "is a file")):
        assert main(["bench", "trainer", "--json", str(target)]) == 2
        err = capsys.readouterr().err
        assert_one_error_line(err)
        assert says in err
    assert ran == [] and not list(tmp_path.glob(".*.tmp"))


def test_bench_on_cuda_without_a_gpu_is_a_clear_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["bench", "optim", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert_one_error_line(err)
    assert "CUDA is not available" in err


@pytest.mark.parametrize("name", ["bfgs", "cg", "newton-cg"])
def test_the_second_order_optimizers_train_from_a_config(name, tmp_path):
    """dlopt's own second-order methods in the lab (the polynomial example runs L-BFGS):
    max_iter iterations per batch, full batch here."""
    text = (ROOT / "examples" / "polynomial.toml").read_text()
    config = tmp_path / "c.toml"
    config.write_text(
        text.replace('name = "lbfgs"', f'name = "{name}"\nmax_iter = 10').replace(
            "epochs = 60", "epochs = 15"
        )
    )
    assert main(["train", str(config), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["test_loss"] < 0.5  # the targets' variance is about 1


@pytest.mark.parametrize(
    ("optimizer", "model", "message"),
    [
        ('name = "lbfgs"\nweight_decay = 0.01', "", "weight_decay is an option of sgd, momentum"),
        ('name = "bfgs"', "[model]\nhidden = [512, 512]\n", "use L-BFGS"),
        ('name = "cg"\nmomentum = 0.9', "", "momentum is an option of momentum, nesterov"),
        ('name = "sgd"\nmomentum = 0.5', "", 'name = "momentum"'),
        ('name = "adam"\nmax_iter = 5', "", "max_iter is an option of lbfgs, bfgs"),
    ],
)
def test_second_order_options_that_cannot_work_are_named(
    optimizer, model, message, tmp_path, capsys
):
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\nname = "digits"\n{model}[optimizer]\n{optimizer}\n')
    assert main(["train", str(config), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert_one_error_line(capsys.readouterr().err, message)


def test_version_and_help_texts_show_toml_sections(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"dlopt {version('dlopt')} (torch ")
    assert main(["search", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "[search.space]" in help_text and "[search] section" in help_text


def test_output_files_follow_the_umask(tmp_path):
    import os
    import stat

    from dlopt._io import atomic_open

    for mask, expected in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        old = os.umask(mask)
        try:
            with atomic_open(tmp_path / f"f{mask}") as handle:
                handle.write(b"x")
        finally:
            os.umask(old)
        assert stat.S_IMODE((tmp_path / f"f{mask}").stat().st_mode) == expected
