"""Hostile files never run code: RELIABILITY S1 (payloads) and S2 (static scan of src/)."""

from __future__ import annotations

import ast
import hashlib
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from dlopt.cli import main

from ..conftest import ROOT, assert_one_error_line, run_cli
from .corpus import GOOD_CONFIG


class Payload:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payload_files(folder: Path, marker: Path) -> dict[str, bytes]:
    evil = Payload(marker)
    zip_torch, legacy = io.BytesIO(), io.BytesIO()
    torch.save({"format": "dlopt-checkpoint", "model": evil}, zip_torch)
    torch.save(
        {"format": "dlopt-checkpoint", "model": evil}, legacy, _use_new_zipfile_serialization=False
    )
    npz = io.BytesIO()
    np.savez(npz, X=np.array([evil, evil], dtype=object), y=np.array([0, 1]))
    return {
        "torch-zip.pt": zip_torch.getvalue(),
        "torch-legacy.pt": legacy.getvalue(),
        "raw-pickle.pt": pickle.dumps(evil),
        "object-array.npz": npz.getvalue(),
        "payload.yaml": f"!!python/object/apply:builtins.open ['{marker}', 'w']\n".encode(),
        "pickle.ckpt": pickle.dumps({"format": "dlopt-checkpoint", "x": evil}),
    }


ENTRY_POINTS = [
    "resume-with-valid-hash",
    "resume-without-hash",
    "dataset-show",
    "dataset-in-config",
    "config",
]


def _argv(entry: str, name: str, data: bytes, folder: Path) -> list[str]:
    bad = folder / name
    bad.write_bytes(data)
    if entry.startswith("resume"):
        (folder / "run.toml").write_text(GOOD_CONFIG)
        out = folder / "out"
        out.mkdir()
        (out / "checkpoint.pt").write_bytes(data)
        if entry == "resume-with-valid-hash":  # the attacker controls the folder
            (out / "checkpoint.pt.sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")
        return ["train", str(folder / "run.toml"), "--out", str(out), "--resume"]
    if entry == "dataset-show":
        return ["datasets", "show", str(bad)]
    if entry == "dataset-in-config":
        (folder / "run.toml").write_text(f'[data]\nname = "{bad}"\n')
        return ["train", str(folder / "run.toml"), "--out", str(folder / "out")]
    return ["train", str(bad), "--out", str(folder / "out")]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    "name",
    [
        "torch-zip.pt",
        "torch-legacy.pt",
        "raw-pickle.pt",
        "object-array.npz",
        "payload.yaml",
        "pickle.ckpt",
    ],
)
def test_payloads_never_run_at_any_entry_point(tmp_path, monkeypatch, capsys, entry, name):
    """S1: 6 payloads × 5 entry points: marker 0/30, exit 2, one line naming the file."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "PWNED"
    data = payload_files(tmp_path, marker)[name]
    argv = _argv(entry, name, data, tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert not marker.exists(), "the payload ran"
    assert code == 2, err
    named = "checkpoint.pt" if entry.startswith("resume") else name
    assert_one_error_line(err, named)


def test_payload_checkpoint_in_a_real_process_with_the_override_set(tmp_path):
    marker = tmp_path / "PWNED"
    data = payload_files(tmp_path, marker)["torch-zip.pt"]
    argv = _argv("resume-with-valid-hash", "torch-zip.pt", data, tmp_path)
    result = run_cli(*argv, env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert result.returncode == 2 and not marker.exists()
    assert_one_error_line(result.stderr, "checkpoint.pt", "refused")


# ---- S2 ----------------------------------------------------------------------------------------
def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


FORBIDDEN_CALLS = {
    "pickle.load",
    "pickle.loads",
    "cPickle.load",
    "_pickle.load",
    "yaml.load",
    "yaml.full_load",
    "yaml.unsafe_load",
    "eval",
    "exec",
    "torch.jit.load",
    "marshal.loads",
    "shelve.open",
    "torch.serialization.add_safe_globals",
    "torch.serialization.safe_globals",
    "add_safe_globals",
}
FORBIDDEN_KEYWORDS = {("weights_only", False), ("allow_pickle", True), ("shell", True)}


def scan(source: str, filename: str = "<src>") -> list[str]:
    findings = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name in FORBIDDEN_CALLS:
            findings.append(f"{filename}:{node.lineno}: {name}()")
        for keyword in node.keywords:
            value = keyword.value
            if isinstance(value, ast.Constant) and (keyword.arg, value.value) in FORBIDDEN_KEYWORDS:
                findings.append(f"{filename}:{node.lineno}: {keyword.arg}={value.value!r}")
        if (
            name in ("torch.load", "load")
            and not any(
                k.arg == "weights_only"
                and isinstance(k.value, ast.Constant)
                and k.value.value is True
                for k in node.keywords
            )
            and name == "torch.load"
        ):
            findings.append(f"{filename}:{node.lineno}: torch.load without weights_only=True")
    return findings


def test_the_scanner_finds_what_it_looks_for():
    bad = (
        "import pickle, yaml, torch\npickle.loads(b'')\nyaml.load('')\neval('1')\n"
        "torch.load('x', weights_only=False)\ntorch.load('y')\nnp.load('z', allow_pickle=True)\n"
        "subprocess.run('ls', shell=True)\ntorch.jit.load('m')\n"
    )
    assert len(scan(bad)) == 9


def test_src_has_no_unsafe_deserialization_or_code_execution():
    """S2: 0 findings in src/ (AST, not grep)."""
    findings = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        findings += scan(path.read_text(), str(path.relative_to(ROOT)))
    assert findings == []
