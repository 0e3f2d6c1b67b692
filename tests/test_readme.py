"""README.md's Python examples run as written, in order, in one namespace (each block continues
the ones before it, as a reader would type them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


def test_readme_has_python_examples():
    assert len(_blocks()) >= 3


def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the examples write runs/…
    namespace: dict[str, object] = {"__name__": "readme"}
    for k, block in enumerate(_blocks(), 1):
        try:
            exec(compile(block, f"README.md python block {k}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"README python block {k} fails: {type(exc).__name__}: {exc}")
    res = namespace["res"]
    assert res.success  # type: ignore[attr-defined]
    assert (tmp_path / "runs" / "py" / "checkpoint.pt").exists()
    assert "accuracy" in capsys.readouterr().out


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
