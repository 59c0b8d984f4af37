"""Matrices (interleaving, resume, failures, planted slowdown) and the regression gate's exit codes."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from golfprof.ablations.matrix import interleaved, run_matrix
from golfprof.ablations.spec import build_spec, code_defaults
from golfprof.results.comparison import comparison
from tests.cli import invoke
from tests.cli import run as golfprof

STEPS = 12


def _spec(tmp: Path, **over):
    opts = {**code_defaults(), "variant": "explicit_banks", "preset": "tiny", "steps": STEPS, "device": "cpu",
            "bf16": "none", "runs_dir": tmp / "runs", "data_dir": tmp / "data", "warmup_steps": 2}
    opts.update(over)
    return build_spec(**opts)




def test_interleaving_order():
    assert interleaved(["a", "b"], 2) == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("planted")
    planted_spec = dataclasses.replace(_spec(tmp), extra={"faults": {"optimizer_delay_ms": 40.0}})
    specs = {"explicit_banks": _spec(tmp), "planted": planted_spec}
    state = run_matrix(specs, repeats=1, nproc=1, matrix_dir=tmp / "m", baseline="explicit_banks")
    return tmp / "m", comparison(tmp / "m", state)


def _row(result: dict, variant: str, metric: str) -> dict:
    return next(r for r in result["rows"] if r["variant"] == variant and r["metric"] == metric)


def test_planted_optimizer_slowdown_is_flagged(planted):
    _, result = planted
    row = _row(result, "planted", "optimizer_ms")
    assert row["significant"] and row["verdict"] == "significantly worse"
    assert 30 < row["diff"] < 80  # the 40 ms sleep, give or take CPU noise
    assert _row(result, "planted", "phase:golfprof/step/optimizer/planted_delay")["value"] >= 40
    assert "With one run, intervals hold only the noise within that run" in result["note"]


def test_regress_exit_codes(planted, tmp_path):
    mdir, _ = planted
    base, slow = mdir / "explicit_banks-r0", mdir / "planted-r0"
    with ThreadPoolExecutor(3) as pool:  # the three real processes (exit 0, 1, 2) read only: side by side
        ok, bad, missing = pool.map(lambda args: golfprof(*args), [
            ("regress", str(base), "--baseline", str(base), "--metric", "optimizer_ms", "--max-increase", "5%"),
            ("regress", str(slow), "--baseline", str(base), "--metric", "optimizer_ms", "--metric", "ms_per_step",
             "--max-increase", "5%", "--json"),
            ("regress", str(tmp_path / "missing"), "--baseline", str(base))])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert bad.returncode == 1, bad.stdout + bad.stderr
    report = json.loads(bad.stdout)
    assert report["regressed"] and report["metrics"][0]["regressed"]
    # a baseline file round-trips and gates the same way (in-process: each exit code is seen from a real
    # process once, above and below; these check which code the gate picks)
    bfile = tmp_path / "baseline.json"
    assert invoke("baseline", "save", base, "-o", bfile).exit_code == 0
    assert invoke("regress", slow / "summary.json", "--baseline", bfile).exit_code == 1
    assert invoke("regress", base, "--baseline", bfile, "--max-increase", "50%").exit_code == 0
    # bad input: exit 2 with one line (the first as a real process)
    r = missing
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and r.stderr.startswith("error: ") and len(lines) == 1, r.stderr
    for args in (["regress", slow, "--baseline", base, "--metric", "bogus"],
                 ["regress", slow, "--baseline", base, "--max-increase", "lots"]):
        r = invoke(*args)
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and r.stderr.startswith("error: ") and len(lines) == 1, r.stderr


def test_regress_refuses_runs_of_different_config(planted, tmp_path):
    mdir, _ = planted
    other = tmp_path / "other"
    other.mkdir()
    summary = json.loads((mdir / "explicit_banks-r0" / "summary.json").read_text())
    summary["tokens_per_step"] *= 2
    (other / "summary.json").write_text(json.dumps(summary))
    r = golfprof("regress", str(other / "summary.json"), "--baseline", str(mdir / "explicit_banks-r0"))
    assert r.returncode == 2 and "not comparable: tokens_per_step" in r.stderr


def test_failed_runs_are_recorded_and_the_matrix_goes_on(tmp_path):
    calls = []

    def launcher(spec, nproc):
        calls.append(Path(spec.run_dir).name)
        return (1, "rank 0: torch.OutOfMemoryError: CUDA out of memory") if "r0" in spec.run_dir else _ok(spec)

    def _ok(spec):
        d = Path(spec.run_dir)
        d.mkdir(parents=True)
        (d / "summary.json").write_text("{}")
        return 0, None

    specs = {"a": _spec(tmp_path), "b": _spec(tmp_path)}
    state = run_matrix(specs, 2, 1, tmp_path / "m", "a", launcher=launcher)
    assert calls == ["a-r0", "b-r0", "a-r1", "b-r1"]
    assert state["runs"]["a-r0"]["status"] == "failed" and "out of memory" in state["runs"]["a-r0"]["error"]
    assert state["runs"]["b-r1"]["status"] == "ok"
    on_disk = json.loads((tmp_path / "m" / "matrix.json").read_text())
    assert on_disk["runs"]["b-r0"]["status"] == "failed"


def test_killed_matrix_resumes_without_rerunning_complete_runs(tmp_path):
    args = ["ablate", "--variant", "explicit_banks", "--repeats", "3", "--steps", "6",
            "--bf16", "none", "--device", "cpu", "--runs-dir", str(tmp_path / "runs"),
            "--data-dir", str(tmp_path / "data"), "--matrix-dir", str(tmp_path / "m"), "--warmup-steps", "1",
            "--profile-steps", "off"]  # the comparison reads the step timers, not a trace
    proc = subprocess.Popen([sys.executable, "-m", "golfprof.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    state_file = tmp_path / "m" / "matrix.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if state_file.exists() and json.loads(state_file.read_text())["runs"]:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = [n for n, i in json.loads(state_file.read_text())["runs"].items() if i["status"] == "ok"]
    assert done, "no run completed before the kill"
    r = invoke(*args)  # the re-run: in-process (the killed one above is the real process that matters)
    assert r.exit_code == 0, r.output[-2000:]
    for name in done:
        assert f"{name}: skipped (complete)" in r.stdout
    final = json.loads(state_file.read_text())
    assert sorted(final["runs"]) == ["explicit_banks-r0", "explicit_banks-r1", "explicit_banks-r2"]
    assert all(i["status"] == "ok" for i in final["runs"].values())
    assert (tmp_path / "m" / "comparison.json").exists() and (tmp_path / "m" / "comparison.csv").exists()
    assert "With one run" not in json.loads((tmp_path / "m" / "comparison.json").read_text())["note"]
