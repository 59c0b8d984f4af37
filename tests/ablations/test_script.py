"""`golfprof profile`: foreign scripts (tests/foreign_scripts/) run unmodified, one rank each (its own process)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from golfprof.ablations.script_launch import profile
from golfprof.ablations.script_spec import ScriptSpec
from golfprof.profiler import names
from golfprof.profiler.rundir import RunDir

SCRIPTS = Path(__file__).resolve().parents[1] / "foreign_scripts"


def _run(tmp_path: Path, script: str, **kw):
    spec = ScriptSpec(script=str(SCRIPTS / script), runs_dir=str(tmp_path / "runs"), **kw)
    return profile(spec)


def test_nanogpt_loop_steps_phases_and_stopping_on_time(tmp_path, capfd):
    res = _run(tmp_path, "nanogpt_accum.py", steps=5, profile="1,1,2", args=["--lr", "3e-4"],
               env={"ITERS": "9", "ACCUM": "2", "EVAL_EVERY": "2"})
    out = capfd.readouterr().out
    assert res.code == 0, res.error
    # stopped as iteration 4's optimizer step returned: it never printed, and the script's end never came
    assert "args ['--lr', '3e-4']" in out and "iter 3 done" in out and "iter 4 done" not in out
    assert "finished" not in out
    rd = RunDir(res.run_dir)
    steps = rd.steps_frame(0)
    assert steps.step.tolist() == [0, 1, 2, 3, 4]
    assert steps.forwards.tolist() == [2] * 5 and steps.backwards.tolist() == [2] * 5  # validation not counted
    assert steps.tokens.tolist() == [2 * 4 * 16] * 5
    phases = rd.phases_frame(0)
    later = set(phases[phases.step == 3].phase)
    assert {names.STEP, names.DATA, names.FORWARD, names.BACKWARD, names.OPTIMIZER,
            names.optimizer_step("AdamW")} <= later
    assert sorted(set(phases[phases.phase == names.EVAL_FORWARD].step)) == [2, 4]
    s = res.summary
    assert s["steps"] == 5 and s["warmup_steps"] == 3 and s["tokens_per_step"] == 128
    assert s["source"] == {"kind": "script", "script": str(SCRIPTS / "nanogpt_accum.py"),
                           "script_sha256": hashlib.sha256((SCRIPTS / "nanogpt_accum.py").read_bytes()).hexdigest()}
    assert s["script"]["outcome"] == "stopped" and s["collectives_per_step"] == []
    assert rd.script_copy("nanogpt_accum.py").read_bytes() == (SCRIPTS / "nanogpt_accum.py").read_bytes()
    assert rd.trace(0).is_file() and rd.is_complete()
    config = rd.read_config()
    assert config["train"]["steps"] == 5 and config["profile_window"] == {"wait": 1, "warmup": 1, "active": 2}


def test_a_script_that_ends_before_steps_is_a_complete_run(tmp_path, capfd):
    res = _run(tmp_path, "nanogpt_accum.py", steps=10, profile="off", env={"ITERS": "3"})
    assert res.code == 0 and "nanogpt_accum: finished" in capfd.readouterr().out
    assert res.summary["steps"] == 3 and res.summary["script"]["outcome"] == "finished"
    assert "ended by itself after 3 training steps" in res.summary["script"]["ended"]
    assert RunDir(res.run_dir).is_complete()


def test_a_script_that_crashes_keeps_its_traceback_and_fails_naming_it(tmp_path):
    res = _run(tmp_path, "crash_at_step.py", steps=8, profile="off")
    assert res.code == 1
    assert "ValueError: loss check failed at iteration 3 at crash_at_step.py:14" in res.error
    rd = RunDir(res.run_dir)
    assert str(rd.launch_logs) in res.error and not rd.is_complete()
    log = rd.launch_stderr.read_text()
    assert "Traceback (most recent call last)" in log and 'crash_at_step.py", line 14, in check_loss' in log
    assert rd.steps_frame(0).step.tolist() == [0, 1, 2]  # the steps before the crash are kept


def test_a_model_compiled_with_fullgraph(tmp_path):
    res = _run(tmp_path, "compiled_model.py", steps=4, profile="1,1,2", env={"ITERS": "6"})
    assert res.code == 0, res.error
    steps = RunDir(res.run_dir).steps_frame(0)
    assert steps.forwards.tolist() == [1] * 4 and steps.optimizer_steps.tolist() == [1] * 4
    assert res.summary["tokens_per_step"] is None  # float inputs: no token ids to count, and no guess


def test_a_plain_class_optimizer_needs_step_fn_and_its_all_reduces_are_recorded(tmp_path):
    res = _run(tmp_path, "plain_optimizer.py", steps=4, profile="off", step_fn="PlainSGD.step",
               simulate_world=2, simulate_rank="0")
    assert res.code == 0, res.error
    rd = RunDir(res.run_dir)
    f = pd.read_parquet(rd.collectives(0))
    per_step = f.groupby("step").bytes.agg(["count", "sum"])
    assert per_step.to_dict("index") == {s: {"count": 4, "sum": 512 + 32 + 128 + 16} for s in range(4)}
    assert set(f.phase) == {names.optimizer_step("PlainSGD")} and set(f.op) == {"all_reduce"}
    assert res.summary["simulated"]["world_size"] == 2 and rd.predicted.is_file()
    assert res.summary["prediction"]["world_size"] == 2
    blind = _run(tmp_path, "plain_optimizer.py", steps=4, profile="off")  # no torch.optim optimizer: no steps
    assert blind.code == 0 and blind.summary["steps"] == 0
    assert any("--step-fn" in n for n in blind.summary["notes"])


def test_a_script_importing_flash_attn_interface_gets_the_shim_and_the_record_says_so(tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "path", list(sys.path))  # install() puts the shim first on both, for the ranks
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    monkeypatch.delenv("GOLFPROF_FA3_SHIM", raising=False)
    res = _run(tmp_path, "fa3_attention.py", steps=3, profile="off", attention_shim="math")
    assert res.code == 0, res.error
    assert res.summary["attention_used"] == "fa3-shim/math"  # what ran, never to be read as FA3
    assert res.summary["attention_shim"]["kind"] == "math" and res.summary["steps"] == 3


@pytest.mark.parametrize("flags,message", [
    ({"script": "missing.py"}, "no such script"),
    ({"step_fn": "step"}, "--step-fn 'step'"),
    ({"steps": 4, "profile": "3,1,3"}, "needs 7 steps"),
    ({"simulate_world": 2, "nproc": 2}, "leave --nproc at 1"),
    ({"simulate_world": 2, "simulate_rank": "5"}, "outside 0..1"),
    ({"attention_shim": "fa4"}, "--attention-shim 'fa4'"),
])
def test_bad_input_is_refused_before_any_folder_exists(tmp_path, flags, message):
    from golfprof.errors import ConfigError

    flags = {"script": str(SCRIPTS / "nanogpt_accum.py")} | flags
    with pytest.raises(ConfigError, match=re.escape(message)):
        profile(ScriptSpec(runs_dir=str(tmp_path / "runs"), **flags))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_cli_runs_a_script_like_torchrun_and_every_command_reads_the_run(tmp_path):
    from tests.cli import invoke, run

    runs = tmp_path / "runs"
    r = run("profile", "--runs-dir", runs, "--steps", "4", "--profile-steps", "1,1,2", "--env", "ITERS=6",
            SCRIPTS / "nanogpt_accum.py", "--lr", "1")
    assert r.returncode == 0, r.stderr
    assert "args ['--lr', '1']" in r.stdout and "run directory:" in r.stdout
    (run_dir,) = runs.iterdir()
    a = invoke("analyze", run_dir, "--json")
    assert a.exit_code == 0 and names.optimizer_step("AdamW") in json.loads(a.output)["ranks"][0]["phases"]
    assert invoke("baseline", "save", run_dir, "-o", tmp_path / "b.json").exit_code == 0
    assert invoke("regress", run_dir, "--baseline", tmp_path / "b.json", "--metric", "ms_per_step").exit_code == 0
    assert invoke("diff", run_dir, run_dir).exit_code == 0
    bad = invoke("profile", "--runs-dir", runs, "--env", "NOEQUALS", SCRIPTS / "nanogpt_accum.py")
    assert bad.exit_code == 2 and "error: --env 'NOEQUALS'" in bad.output
