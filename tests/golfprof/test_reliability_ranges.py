"""Class 1 of issue 28: a number outside its range is one ``error:`` line (exit 2) before any folder or process
exists. Ranges are declared with the fields (``option(..., min=, max=)``) or on typer's own options."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import get_type_hints

import pytest
import typer

from golfprof import options as O
from golfprof.ablations.spec import RunSpec
from golfprof.cli import app
from golfprof.model.config import SEED_MAX, SEED_MIN, TrainConfig
from tests.cli import invoke
from tests.golfprof.refusal import assert_refused, make_workspace, tree

TINY = ["--preset", "tiny", "--steps", "4", "--quiet", "--profile-steps", "off"]
TRAIN = ["train", *TINY]
ABLATE2 = ["ablate", "--nproc", "2", *TINY]

# (id, argv, what the error line says)
CASES = [
    ("micro-batch-0", [*TRAIN, "--micro-batch-seqs", "0"], "--micro-batch-seqs 0: must be >= 1"),
    ("micro-batch-negative", [*ABLATE2, "--micro-batch-seqs", "-3"], "--micro-batch-seqs -3: must be >= 1"),
    ("tokens-per-step-0", [*TRAIN, "--tokens-per-step", "0"], "--tokens-per-step 0: must be >= 1"),
    ("seq-len-0", [*ABLATE2, "--seq-len", "0"], "--seq-len 0: must be >= 1"),
    ("steps-0", ["train", "--preset", "tiny", "--steps", "0"], "--steps 0: must be >= 1"),
    ("steps-negative", ["ablate", "--nproc", "2", "--steps", "-1"], "--steps -1: must be >= 1"),
    ("seed-above-torch", [*TRAIN, "--seed", str(SEED_MAX + 1)], f"must be between {SEED_MIN} and {SEED_MAX}"),
    ("seed-below-torch", [*ABLATE2, "--seed", str(SEED_MIN - 1)], "--seed"),
    ("warmup-negative", [*TRAIN, "--warmup-steps", "-1"], "--warmup-steps -1: must be >= 0"),
    ("warmup-negative-matrix", [*ABLATE2, "--repeats", "2", "--warmup-steps", "-2"], "--warmup-steps -2"),
    ("simulate-world-0", [*TRAIN, "--simulate-world", "0"], "--simulate-world 0: must be >= 1"),
    ("simulate-nodes-0", [*TRAIN, "--simulate-world", "2", "--simulate-nodes", "0"], "--simulate-nodes 0"),
    ("sweep-0", ["ablate", *TINY, "--sweep-tokens-per-step", "1536,0"], "--sweep-tokens-per-step value 0"),
    ("sweep-below-world", [*ABLATE2, "--sweep-tokens-per-step", "64"], "fewer than the world size 2"),
    ("sweep-not-seq-multiple", [*ABLATE2, "--sweep-tokens-per-step", "100"], "not a multiple of seq_len 64"),
    ("sweep-negative", [*ABLATE2, "--sweep-tokens-per-step", "-64"], "--sweep-tokens-per-step value -64"),
    ("nproc-0", ["ablate", "--nproc", "0", *TINY], "--nproc must be >= 1"),
    ("repeats-0", [*ABLATE2, "--repeats", "0"], "--repeats must be >= 1"),
    ("analyze-jobs", ["analyze", OLD := "runs", "--jobs", "-1"], "'--jobs'"),
    ("diff-top", ["diff", OLD, OLD, "--top", "-1"], "'--top'"),
    ("bench-overhead-pairs", ["bench", "overhead", "--pairs", "0"], "--pairs must be >= 1"),
    ("bench-overhead-tokens", ["bench", "overhead", "--tokens-per-step", "0"], "--tokens-per-step 0"),
    ("bench-overhead-warmup", ["bench", "overhead", "--warmup-steps", "-1"], "--warmup-steps -1"),
    ("bench-ortho-warmup", ["bench", "ortho", "--device", "cpu", "--warmup", "-1"], "--warmup >= 0"),
    ("bench-ortho-reps", ["bench", "ortho", "--device", "cpu", "--reps", "0"], "--reps must be >= 1"),
    ("bench-attention-warmup", ["bench", "attention", "--device", "cpu", "--preset", "tiny", "--warmup", "-1"],
     "--warmup >= 0"),
    ("bench-attention-reps", ["bench", "attention", "--device", "cpu", "--preset", "tiny", "--reps", "0"],
     "--reps must be >= 1"),
    ("bench-comm-nproc", ["bench", "comm", "--nproc", "0", "--out", "t.json"], "--nproc must be >= 1"),
    ("bench-comm-bytes", ["bench", "comm", "--min-bytes", "0", "--out", "t.json"], "need 1 <= min <= max"),
    ("bench-comm-bytes-order", ["bench", "comm", "--min-bytes", "64", "--max-bytes", "8", "--out", "t.json"],
     "need 1 <= min <= max"),
    ("dashboard-step", ["dashboard", "runs", "--step", "-1", "-o", "new.html"], "'--step'"),
    ("stall-timeout-0", [*TRAIN, "--stall-timeout", "0"], "--stall-timeout 0.0: must be >= 1"),
    ("profile-nproc-0", ["profile", "--nproc", "0", "train.py"], "--nproc 0: must be >= 1"),
    ("profile-steps-0", ["profile", "--steps", "0", "train.py"], "--steps 0: must be >= 1"),
    ("profile-warmup", ["profile", "--warmup-steps", "-1", "train.py"], "--warmup-steps -1: must be >= 0"),
    ("profile-world-0", ["profile", "--simulate-world", "0", "train.py"], "--simulate-world 0: must be >= 1"),
    ("profile-nodes-0", ["profile", "--simulate-world", "2", "--simulate-nodes", "0", "train.py"],
     "--simulate-nodes 0: must be >= 1"),
    ("profile-stall-0", ["profile", "--stall-timeout", "0", "train.py"], "--stall-timeout 0.0: must be >= 1"),
    ("bench-mlp-reps", ["bench", "mlp", "--reps", "0"], "--reps must be >= 1"),
    ("bench-mlp-warmup", ["bench", "mlp", "--warmup", "-1"], "--warmup >= 0"),
    ("bench-ce-reps", ["bench", "ce", "--reps", "0"], "--reps must be >= 1"),
    ("bench-ce-warmup", ["bench", "ce", "--warmup", "-1"], "--warmup >= 0"),
    ("bench-comm-interference-sms", ["bench", "comm", "--interference", "--interference-sms", "0", "--out", "t.json"],
     "'--interference-sms'"),
    ("synth-vocab", ["data", "synth", "--out", "d", "--vocab", "1"], "--vocab 1: must be in 4..65536"),
    ("synth-train-tokens", ["data", "synth", "--out", "d", "--vocab", "300", "--train-tokens", "0"],
     "--train-tokens must be >= 1"),
    ("synth-val-tokens", ["data", "synth", "--out", "d", "--vocab", "300", "--val-tokens", "0"],
     "--val-tokens must be >= 1"),
    ("synth-shard-tokens", ["data", "synth", "--out", "d", "--vocab", "300", "--shard-tokens", "0"],
     "--shard-tokens must be >= 1"),
]


@pytest.mark.parametrize("argv,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_number_out_of_range_is_refused_before_anything_exists(argv, message, tmp_path, monkeypatch):
    root = make_workspace(tmp_path / "work")
    monkeypatch.chdir(root)
    before = tree(root)
    assert_refused(invoke(*argv), 2, message, root, before)


def _numeric(cls: type) -> list[dataclasses.Field]:
    hints = get_type_hints(cls)
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata
            and any(t in str(hints[f.name]) for t in ("int", "float")) and hints[f.name] is not bool]


@pytest.mark.parametrize("cls", [TrainConfig, RunSpec])
def test_every_numeric_run_option_declares_its_range(cls):
    """A new numeric option without a declared range fails here: the class is checked, not the examples."""
    missing = [f.name for f in _numeric(cls) if f.metadata.get("min") is None and f.metadata.get("max") is None]
    assert not missing, missing


def test_every_declared_range_has_a_case():
    covered = " ".join(" ".join(argv) for _, argv, _ in CASES)
    flags = [o.flag for o in O.run_options() if o.field in {f.name for c in (TrainConfig, RunSpec)
                                                            for f in _numeric(c)}]
    assert [f for f in flags if f not in covered] == []


def _commands(cmd, path: str = "golfprof") -> dict:  # noqa: ANN001 - typer vendors click: duck-typed
    if hasattr(cmd, "commands"):
        return {k: v for name, sub in cmd.commands.items() for k, v in _commands(sub, f"{path} {name}").items()}
    return {path.removeprefix("golfprof "): cmd}


def _bounded(p) -> bool:  # noqa: ANN001
    info = p.type_descriptor.parameter_info
    return any(getattr(info, k, None) is not None for k in ("min", "max"))


def test_every_numeric_command_option_is_bounded_or_has_a_case():
    """typer's own numeric options: a declared min/max, or a refusal the table above exercises."""
    generated = {o.param for o in O.run_options()}
    covered = [" ".join(argv) for _, argv, _ in CASES]
    unbounded = []
    for path, cmd in _commands(typer.main.get_command(app)).items():
        for p in cmd.params:
            if p.name in generated or p.type_descriptor.annotation not in (int, float) or _bounded(p):
                continue
            if not any(c.startswith(path + " ") and p.opts[0] in c.split() for c in covered):
                unbounded.append(f"{path} {p.opts[0]}")
    assert unbounded == []


def test_torch_seeds_are_accepted(tmp_path, monkeypatch):
    """Seeds are whatever torch.manual_seed takes: a negative one trains (synthetic data included)."""
    monkeypatch.chdir(tmp_path)
    r = invoke("train", *TINY, "--steps", "2", "--compile", "off", "--seed", "-1")
    assert r.exit_code == 0, r.output
    assert Path("data").is_dir() and len(list(Path("runs").iterdir())) == 1
