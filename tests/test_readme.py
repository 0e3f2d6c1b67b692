"""README.md's Python examples run as written, each on its own: a fresh namespace and a fresh
working directory per block, as a reader who copies one block into a new file would run it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


def test_readme_has_python_examples():
    assert len(_blocks()) >= 4


# what each block must leave behind (a name in its namespace, a file in its folder)
_EXPECT = {1: ("trainer", "runs/py/checkpoint.pt"), 5: ("run", "runs/iris/best.pt")}


@pytest.mark.parametrize("k", range(1, len(_blocks()) + 1))
def test_readme_python_block_runs_on_its_own(k, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the examples write runs/…, study.db, mydata/
    block = _blocks()[k - 1]
    namespace: dict[str, object] = {"__name__": "__main__"}  # fresh: nothing from other blocks
    try:
        exec(compile(block, f"README.md python block {k}", "exec"), namespace)
    except Exception as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"README python block {k} fails on its own: {type(exc).__name__}: {exc}")
    name, path = _EXPECT.get(k, (None, None))
    if name is not None:
        assert name in namespace
    if path is not None:
        assert (tmp_path / path).exists()
    if k == 1:
        assert "accuracy" in capsys.readouterr().out
    if k == 5:
        assert "setosa" in capsys.readouterr().out


@pytest.mark.parametrize(
    "module",
    [
        "dlopt.optim.minimize",
        "dlopt.optim.optimizers",
        "dlopt.nn.activations",
        "dlopt.augment.affine",
        "dlopt.augment.crop_flip",
        "dlopt.augment.pca_color",
        "dlopt.augment.elastic",
        "dlopt.augment.noise",
        "dlopt.augment.compose",
        "dlopt.ensemble.stacked",
        "dlopt.search.study",
    ],
)
def test_docstring_examples_run(module):
    import doctest
    import importlib

    failed, attempted = doctest.testmod(importlib.import_module(module), verbose=False)
    assert attempted > 0 and failed == 0
