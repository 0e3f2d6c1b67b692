"""A trained run folder is used again: load_run, dlopt evaluate and dlopt predict give the
numbers the run measured, in this process or a fresh one, and refuse bad input in one line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.preprocessing import LabelEncoder

import dlopt
from dlopt.cli import main

from ..conftest import ROOT, assert_one_error_line

CONFIG = """
name = "iris"
[data]
name = "../data/iris.csv"
label = "species"
[model]
hidden = [16]
[optimizer]
lr = 0.01
[train]
epochs = 30
batch_size = 32
"""


def write_iris(path: Path) -> list[str]:
    """Iris as a CSV with a header and the species' names as labels; returns the names."""
    bunch = load_iris()
    names = [str(bunch.target_names[k]) for k in bunch.target]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width", "species"])
        for x, name in zip(bunch.data, names, strict=True):
            writer.writerow([f"{v:g}" for v in x] + [name])
    return names


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("iris")
    write_iris(root / "data" / "iris.csv")
    (root / "configs").mkdir()
    (root / "configs" / "iris.toml").write_text(CONFIG)
    cwd = os.getcwd()
    os.chdir(root)  # ../data/iris.csv from here is no file: it is read from configs/
    try:
        assert (
            main(["train", str(root / "configs" / "iris.toml"), "--out", str(root / "run"), "-q"])
            == 0
        )
    finally:
        os.chdir(cwd)
    return root


def test_evaluate_gives_the_metrics_the_run_measured(iris_run, capsys):
    run = iris_run / "run"
    assert main(["evaluate", str(run)]) == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((run / "metrics.json").read_text())
    for key in ("test_loss", "test_accuracy"):
        assert printed[key] == stored[key]  # the same numbers, bit for bit
    assert json.loads((run / "evaluation.json").read_text()) == printed


def test_the_run_keeps_its_label_encoding_and_transform(iris_run):
    run = dlopt.load_run(iris_run / "run")
    assert run.class_names == tuple(LabelEncoder().fit(load_iris().target_names).classes_)
    assert run.transform is not None and run.transform.mean.shape == (4,)
    assert not run.model.training and run.config.data.name == str(iris_run / "data" / "iris.csv")


def test_predict_writes_class_names_and_probabilities(iris_run, tmp_path):
    out = tmp_path / "preds.csv"
    data = str(iris_run / "data" / "iris.csv")
    assert main(["predict", str(iris_run / "run"), data, "--out", str(out), "--proba"]) == 0
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0] == ["prediction", "p_setosa", "p_versicolor", "p_virginica"]
    run = dlopt.load_run(iris_run / "run")
    X = torch.tensor(load_iris().data, dtype=torch.float32)
    # reference: standardize by hand, softmax by torch
    logits = run.model((X - run.transform.mean) / run.transform.std).detach()
    expected = torch.softmax(logits, -1)
    names = [run.class_names[k] for k in expected.argmax(-1).tolist()]
    assert [r[0] for r in rows[1:]] == names
    np.testing.assert_array_equal(np.array([r[1:] for r in rows[1:]], float), expected.double())
    accuracy = np.mean([p == t for p, t in zip(names, write_iris(tmp_path / "i.csv"), strict=True)])
    assert accuracy > 0.7


def test_predict_takes_a_table_without_its_label_column(iris_run, tmp_path):
    features = tmp_path / "features.csv"
    np.savetxt(features, load_iris().data[:5], delimiter=",", fmt="%g")
    out = tmp_path / "p.csv"
    assert main(["predict", str(iris_run / "run"), str(features), "--out", str(out)]) == 0
    run = dlopt.load_run(iris_run / "run")
    expected = [run.class_names[k] for k in run.predict(load_iris().data[:5]).tolist()]
    assert out.read_text().split() == ["prediction", *expected]


def test_load_run_in_a_fresh_process_predicts_bit_for_bit(iris_run, tmp_path):
    run = dlopt.load_run(iris_run / "run")
    X = load_iris().data
    here = run.outputs(X).numpy()
    script = (
        "import sys, numpy as np, dlopt; from sklearn.datasets import load_iris; "
        "run = dlopt.load_run(sys.argv[1]); np.save(sys.argv[2], run.outputs(load_iris().data).numpy())"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-c", script, str(iris_run / "run"), str(tmp_path / "o.npy")],
        check=True,
        env=env,
        timeout=120,
    )
    there = np.load(tmp_path / "o.npy")
    assert here.tobytes() == there.tobytes()


def test_evaluate_on_another_file_maps_class_names(iris_run, tmp_path, capsys):
    subset = tmp_path / "two.csv"  # only two of the classes: encoded as the run's, not afresh
    lines = (iris_run / "data" / "iris.csv").read_text().splitlines()
    subset.write_text("\n".join([lines[0], *lines[51:]]) + "\n")
    assert (
        main(
            [
                "evaluate",
                str(iris_run / "run"),
                "--data",
                str(subset),
                "--out",
                str(tmp_path / "e.json"),
            ]
        )
        == 0
    )
    accuracy = json.loads(capsys.readouterr().out)["test_accuracy"]
    run = dlopt.load_run(iris_run / "run")
    target = load_iris().target[50:]
    expected = float((run.predict(load_iris().data[50:]).numpy() == target).mean())
    assert accuracy == pytest.approx(expected, abs=1e-12)


def _corrupt(run: Path, tmp: Path) -> Path:
    copy = tmp / "bad"
    subprocess.run(["cp", "-r", str(run), str(copy)], check=True)
    with (copy / "best.pt").open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\xff\xff")
    return copy


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing", "no such run folder"),
        ("not-a-run", "not a finished dlopt run folder"),
        ("corrupt", "SHA-256 mismatch"),
        ("bad-run-json", "not valid JSON"),
        ("features", "the run's model takes 4 features"),
        ("no-data", "no such file"),
    ],
)
def test_hostile_inputs_are_one_line_exit_2(iris_run, tmp_path, capsys, case, needle):
    run = iris_run / "run"
    data = str(iris_run / "data" / "iris.csv")
    if case == "missing":
        run = tmp_path / "nowhere"
    elif case == "not-a-run":
        run = iris_run / "configs"
    elif case == "corrupt":
        run = _corrupt(run, tmp_path)
    elif case == "bad-run-json":
        run = _corrupt(run, tmp_path)
        (run / "run.json").write_text("{not json")
    elif case == "features":
        data = str(tmp_path / "three.csv")
        Path(data).write_text("1,2,3\n4,5,6\n")
    elif case == "no-data":
        data = str(tmp_path / "none.csv")
    out = tmp_path / "preds.csv"
    capsys.readouterr()
    assert main(["predict", str(run), data, "--out", str(out)]) == 2
    assert_one_error_line(capsys.readouterr().err, needle)
    assert not out.exists()
    if case != "features" and case != "no-data":
        assert main(["evaluate", str(run), "--out", str(tmp_path / "e.json")]) == 2
        assert_one_error_line(capsys.readouterr().err, needle)


def test_a_loss_that_does_not_fit_the_labels_is_refused_before_training(tmp_path, capsys):
    config = tmp_path / "mse.toml"
    config.write_text('[data]\nname = "wine"\n[train]\nloss = "mse"\nepochs = 1\n')
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    assert_one_error_line(capsys.readouterr().err, "needs a regression task", 'task = "regression"')
    assert not (tmp_path / "run").exists()
    config.write_text(
        '[data]\nname = "wine"\ntask = "regression"\n[train]\nloss = "mse"\nepochs = 2\n'
    )
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "-q"]) == 0
    run = dlopt.load_run(tmp_path / "run")
    assert run.task == "regression" and run.predict(np.zeros((3, 13))).shape == (3,)


def test_an_ensemble_run_evaluates_to_its_metrics(tmp_path, capsys):
    write_iris(tmp_path / "data" / "iris.csv")
    config = tmp_path / "configs" / "e.toml"
    config.parent.mkdir()
    config.write_text(CONFIG.replace("epochs = 30", "epochs = 3") + "[ensemble]\nmembers = 2\n")
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "-q"]) == 0
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("member_0_accuracy", "average_accuracy", "vote_accuracy"):
        assert printed[key] == stored[key]
    out = tmp_path / "p.csv"
    assert (
        main(
            [
                "predict",
                str(tmp_path / "run"),
                str(tmp_path / "data" / "iris.csv"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert set(out.read_text().split()[1:]) <= {"setosa", "versicolor", "virginica"}


def test_the_readme_iris_commands_round_trip(tmp_path, monkeypatch, capsys):
    """README "Your own data" / "Use a trained model": train, evaluate, predict."""
    monkeypatch.chdir(tmp_path)  # the config's data path is read beside the config
    run = tmp_path / "runs" / "iris"
    assert main(["train", str(ROOT / "examples" / "iris.toml"), "--out", str(run), "-q"]) == 0
    assert main(["evaluate", str(run)]) == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((run / "metrics.json").read_text())
    assert printed["test_accuracy"] == stored["test_accuracy"] > 0.85
    assert printed["test_loss"] == stored["test_loss"]
    preds = tmp_path / "preds.csv"
    data = str(ROOT / "examples" / "iris.csv")
    assert main(["predict", str(run), data, "--out", str(preds), "--proba"]) == 0
    rows = list(csv.reader(preds.read_text().splitlines()))
    truth = [r[-1] for r in csv.reader((ROOT / "examples" / "iris.csv").read_text().splitlines())]
    assert (
        len(rows) == 151
        and np.mean([r[0] == t for r, t in zip(rows[1:], truth[1:], strict=True)]) > 0.85
    )
    np.testing.assert_allclose([sum(map(float, r[1:])) for r in rows[1:]], 1.0, rtol=1e-6)
