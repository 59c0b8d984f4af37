"""What `diff` says about two runs' settings before its figures (traces/settings.py)."""

from __future__ import annotations

import json
from pathlib import Path

from golfprof.traces.settings import difference_lines


def _run(root: Path, config: dict, env: dict) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps(config))
    (root / "env.json").write_text(json.dumps(env))
    return root


TRAINER = {"variant": "explicit_banks", "preset": "full", "toggles": {"attention": "sdpa"},
           "model": {"num_layers": 11}, "train": {"steps": 16}, "launch": {"steps": None}}
SCRIPT = {"variant": "script", "preset": "script", "script": {"path": "/x/train_gpt.py", "sha256": "ab"},
          "train": {"steps": 0}, "launch": {"steps": 16, "env": {"ITERATIONS": "16"}}}
ENV = {"torch": "2.11", "tf32": True, "compiler_env": {"TORCHINDUCTOR_MIX_ORDER_REDUCTION": "0"}}


def test_a_script_against_the_trainer_is_one_note_and_the_environment_still_warns(tmp_path: Path):
    a = _run(tmp_path / "a", SCRIPT, {**ENV, "tf32": False})
    b = _run(tmp_path / "b", TRAINER, ENV)
    lines = difference_lines(a, b)
    assert lines[0] == ("note", "A is the script train_gpt.py, B golfprof's trainer (explicit_banks): two programs, "
                                "whose own settings are not compared")
    assert lines[1:] == [("warning", "A and B were run with different settings, so their figures are not like for "
                                     "like: env.tf32 False → True")]


def test_two_trainer_runs_are_compared_field_by_field(tmp_path: Path):
    a = _run(tmp_path / "a", TRAINER, ENV)
    b = _run(tmp_path / "b", {**TRAINER, "toggles": {"attention": "cudnn"}, "train": {"steps": 8}},
             {**ENV, "compiler_env": {}})
    kinds = dict(difference_lines(a, b))
    assert kinds["note"] == "A and B differ in toggles.attention sdpa → cudnn"
    assert "train.steps 16 → 8" in kinds["warning"]
    assert "env.compiler_env.TORCHINDUCTOR_MIX_ORDER_REDUCTION 0 → -" in kinds["warning"]
