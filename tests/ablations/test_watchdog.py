"""Class 5 of issue 28: a stuck rank ends the job. Each rank's heartbeat reports its main thread's progress (the
current phase, the step); the launcher ends a job whose rank made no progress for --stall-timeout seconds with
`error: rank N made no progress for S s (stuck in <phase>)`, exit 1, logs kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from golfprof.ablations import watchdog as W
from golfprof.profiler import phases
from tests.golfprof.refusal import Outcome, assert_one_error


def _beat(folder: Path, rank: int, at: float, phase: str = "golfprof/step/forward", step: int | None = 3) -> None:
    folder.mkdir(exist_ok=True)
    W.heartbeat_path(folder, rank).write_text(json.dumps({"rank": rank, "pid": 1, "at": at, "phase": phase,
                                                          "step": step}))


# (id, heartbeats as {rank: seconds idle} (None: no file yet), seconds since the job started, the verdict)
CASES = [
    ("all-fresh", {0: 0.5, 1: 1.0}, 60, None),
    ("one-stalled", {0: 0.5, 1: 11.0}, 60, "rank 1 made no progress for 10 s (stuck in golfprof/step/forward, step 3)"),
    ("peer-waits-later", {0: 10.5, 1: 12.0}, 60, "rank 1 made no progress for 10 s"),
    ("never-started", {0: 1.0, 1: None}, 11, "rank 1 made no progress for 10 s (stuck in start-up)"),
    ("starting-within-time", {0: None, 1: None}, 9, None),
    ("just-under", {0: 9.9}, 60, None),
]


@pytest.mark.parametrize("idle,since_start,verdict", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_watch_names_the_rank_idle_longest(idle, since_start, verdict, tmp_path):
    now = 1000.0
    watch = W.Watch(tmp_path / "hb", len(idle), stall_s=10)
    watch.started = now - since_start
    for rank, seconds in idle.items():
        if seconds is not None:
            _beat(tmp_path / "hb", rank, now - seconds)
    found = watch.stuck(now)
    assert found == verdict if verdict is None else found.startswith(verdict), found


def test_the_heartbeat_moves_with_the_main_thread_only(tmp_path):
    hb = W.Heartbeat(tmp_path, 0)
    first = hb.record()
    assert first["phase"] == W.START_UP
    hb.stage("joining the process group")
    assert hb.record()["phase"] == "joining the process group" and hb.record()["at"] > first["at"]
    with phases.Marker()(phases.STEP), phases.Marker()(phases.FORWARD):
        inside = hb.record()
    assert inside["phase"] == phases.FORWARD and inside["at"] >= hb.record()["at"] - 1
    hb.write()
    written = json.loads(W.heartbeat_path(tmp_path, 0).read_text())
    assert written["rank"] == 0 and written["pid"] == os.getpid()
    mtime = W.heartbeat_path(tmp_path, 0).stat().st_mtime_ns
    time.sleep(0.01)
    hb.write()  # nothing happened since: the file is left alone, so its time says when progress was last made
    assert W.heartbeat_path(tmp_path, 0).stat().st_mtime_ns == mtime


def _heartbeats(tmp: Path) -> dict[int, dict]:
    out = {}
    for path in tmp.glob("golfprof-launch-*/heartbeat/rank*.json"):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out[rec["rank"]] = rec
    return out


STALL_S = 6


def test_a_stopped_rank_ends_the_job_within_the_stated_time(tmp_path):
    """`kill -STOP` one rank of `ablate --nproc 2` (gloo, tiny): the job ends, naming the rank and its phase."""
    (tmp_path / "tmp").mkdir()
    cmd = [sys.executable, "-m", "golfprof.cli", "ablate", "--nproc", "2", "--preset", "tiny", "--steps", "100000",
           "--compile", "off", "--bf16", "none", "--quiet", "--profile-steps", "off", "--stall-timeout", str(STALL_S),
           "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")]
    proc = subprocess.Popen(cmd, env={**os.environ, "TMPDIR": str(tmp_path / "tmp")}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    stopped = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            beats = _heartbeats(tmp_path / "tmp")
            if len(beats) == 2 and all((b.get("step") or 0) >= 2 for b in beats.values()):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        else:
            raise AssertionError("the ranks never trained")
        stopped = psutil.Process(beats[1]["pid"])
        stopped.suspend()  # kill -STOP
        # the stated time runs from the stopped rank's last progress as its heartbeat file says (monotonic, one
        # clock for the host), not from the suspension: on a loaded machine a step can outlast a second
        last = _heartbeats(tmp_path / "tmp")[1]["at"]
        out, err = proc.communicate(timeout=STALL_S + 30)
        took = time.monotonic() - last
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    line = assert_one_error(Outcome(proc.returncode, out, err), 1,
                            f"error: rank 1 made no progress for {STALL_S} s (stuck in golfprof/")
    assert STALL_S - 0.5 < took < STALL_S + 10, took  # never before the stated time; soon after it
    assert not stopped.is_running() or stopped.status() == psutil.STATUS_ZOMBIE, "the stopped rank was left behind"
    (run,) = (tmp_path / "runs").iterdir()
    logs = list((run / "launch_logs").rglob("stderr.log"))
    assert len(logs) >= 2, "each rank's log is kept"
    assert ", step " in line
