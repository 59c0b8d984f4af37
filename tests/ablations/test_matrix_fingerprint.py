"""Class 4 of issue 28: a matrix folder keeps a fingerprint of its settings; a command with other settings is
refused for it (exit 2, both settings named, nothing in the folder changed) instead of pooling runs that are not
comparable. The same settings resume it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli import invoke
from tests.cli import run as golfprof
from tests.golfprof.refusal import assert_refused, tree

BASE = ["ablate", "--preset", "tiny", "--steps", "2", "--compile", "off", "--profile-steps", "off", "--quiet",
        "--matrix-dir", "m", "--runs-dir", "runs", "--data-dir", "data"]


def _at(root: Path, argv: list[str]) -> list[str]:
    return [str(root / a) if a in ("m", "runs", "data") else a for a in argv]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> Path:
    """One finished one-run matrix, made by a real golfprof process."""
    root = tmp_path_factory.mktemp("fingerprint")
    r = golfprof(*_at(root, BASE), timeout=240)
    assert r.returncode == 0, r.stderr
    return root


# (id, options changed from the matrix's, what the matrix was made with, what this command asks for)
CASES = [
    ("nproc", ["--nproc", "2"], "--nproc 1", "--nproc 2"),
    ("steps", ["--steps", "3"], "--steps 2", "--steps 3"),
    ("preset", ["--preset", "golf7l", "--tokens-per-step", "4096", "--micro-batch-seqs", "2"], "--preset 'tiny'",
     "--preset 'golf7l'"),
    ("tokens-per-step", ["--tokens-per-step", "3072"], "explicit_banks: --tokens-per-step 1536",
     "explicit_banks: --tokens-per-step 3072"),
    ("seq-len", ["--seq-len", "32"], "--seq-len 64", "--seq-len 32"),
    ("seed", ["--seed", "7"], "--seed 1337", "--seed 7"),
    ("toggle", ["--bf16", "none"], "explicit_banks: --bf16 ['embeddings'", "explicit_banks: --bf16 []"),
    ("warmup", ["--warmup-steps", "0"], "--warmup-steps None", "--warmup-steps 0"),
    ("profile-window", ["--profile-steps", "0,1,1"], "--profile-steps 'off'", "--profile-steps '0,1,1'"),
    ("timers", ["--no-timers"], "--timers True", "--timers False"),
]
RECORDED_BY_RUNS = ("--nproc", "--steps", "--preset", "--tokens-per-step", "--seq-len", "--seed", "--bf16")


@pytest.mark.parametrize("legacy", [False, True], ids=["fingerprint", "written-before-fingerprints"])
@pytest.mark.parametrize("extra,was,now", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_other_settings_are_refused_naming_both(extra, was, now, legacy, matrix, tmp_path):
    root = matrix
    if legacy:  # a matrix.json without its fingerprint: the settings are read back from its runs
        if extra[0] not in RECORDED_BY_RUNS:
            pytest.skip("a run's config.json records the model, training and toggles, not every launch setting")
        root = tmp_path / "legacy"
        shutil.copytree(matrix, root, symlinks=True)
        state = json.loads((root / "m" / "matrix.json").read_text())
        state.pop("fingerprint")
        (root / "m" / "matrix.json").write_text(json.dumps(state))
    before = tree(root)
    line = assert_refused(invoke(*_at(root, BASE), *extra), 2, f"holds runs made with {was}", root, before)
    assert f"asks for {now}" in line, line


def _runs(matrix: Path) -> dict[str, dict[str, str]]:
    """The matrix's run folders, less their lock files (a resume claims each lock, writing its pid there)."""
    return {p.name: {k: v for k, v in tree(p).items() if not k.endswith(".lock")}
            for p in (matrix / "m").iterdir() if p.is_dir()}


def test_the_same_settings_resume_the_matrix(matrix):
    runs = _runs(matrix)
    r = invoke(*_at(matrix, BASE), "--device", "cpu")  # auto is the CPU here: the same matrix
    assert r.exit_code == 0, r.output
    assert "explicit_banks-r0: skipped (complete)" in r.stdout
    assert _runs(matrix) == runs
