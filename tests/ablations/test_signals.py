"""Signals and crashes with real processes (gloo, 2 ranks on the CPU): kill -9 and Ctrl-C of golfprof leave no
process running, no launch folder behind and no folder owned by two runs (issue 17)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from golfprof.ablations.ownership import FolderInUse, claim, hold_shared, remove_stale_launch_folders

TINY = ["--preset", "tiny", "--compile", "off", "--bf16", "none", "--quiet", "--profile-steps", "off"]


def _start(tmp: Path, *args: str, steps: int = 400) -> subprocess.Popen:
    """golfprof ARGS as a child, long enough to be stopped mid-run; temp folders under tmp/tmp."""
    (tmp / "tmp").mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp / "tmp"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "golfprof.cli", *args, *TINY, "--steps", str(steps),
           "--runs-dir", str(tmp / "runs"), "--data-dir", str(tmp / "data")]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_ranks(proc: subprocess.Popen, n: int, timeout: float = 120) -> list[psutil.Process]:
    """golfprof's descendants once n ranks are training (each rank has written its run folder's lock share)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        family = psutil.Process(proc.pid).children(recursive=True)
        ranks = [p for p in family if _is_rank(p)]
        if len(ranks) == n and all(_holds_run_lock(p) for p in ranks):
            return family
        time.sleep(0.2)
    raise AssertionError("ranks did not start")


def _is_rank(p: psutil.Process) -> bool:
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return False
    return "golfprof.ablations.worker" in cmd and "torch.distributed.run" not in cmd  # torchrun names it too


def _holds_run_lock(p: psutil.Process) -> bool:
    try:
        return any(f.path.endswith("/.lock") for f in p.open_files())
    except psutil.Error:
        return False


def _gone(family: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for p in alive:  # do not leave them behind for the next test
        p.kill()
    return alive


def test_kill_9_of_golfprof_takes_torchrun_and_ranks_with_it(tmp_path):
    proc = _start(tmp_path, "ablate", "--nproc", "2")
    family = _wait_for_ranks(proc, 2)
    launch_dirs = list((tmp_path / "tmp").glob("golfprof-launch-*"))
    assert launch_dirs, "the launch folder is where torchrun's logs go"
    proc.kill()
    proc.wait()
    alive = _gone(family, timeout=15)
    assert not alive, [p.pid for p in alive]
    (run_dir,) = (tmp_path / "runs").iterdir()
    claim(run_dir / ".lock").close()  # a dead owner's lock is free
    assert set(remove_stale_launch_folders(tmp_path / "tmp")) == set(launch_dirs)
    assert not list((tmp_path / "tmp").glob("golfprof-launch-*"))


def test_rerun_after_kill_9_never_shares_a_folder_with_the_killed_run(tmp_path):
    args = ["ablate", "--variant", "explicit_banks", "--variant", "ddp_banks", "--nproc", "2"]
    proc = _start(tmp_path, *args, steps=6)
    family = _wait_for_ranks(proc, 2)
    (matrix,) = (tmp_path / "runs").glob("matrix-*")
    in_flight = matrix / "explicit_banks-r0"
    with pytest.raises(FolderInUse, match="in use by a live golfprof run"):
        claim(in_flight / ".lock")  # a second writer is refused while the run lives
    proc.kill()
    t_kill = time.time()
    rerun = _start(tmp_path, *args, steps=6)
    out, err = rerun.communicate(timeout=300)
    _gone(family, timeout=1)
    assert rerun.returncode == 0, err[-3000:]
    (aside,) = matrix.glob("explicit_banks-r0.incomplete-*")
    assert not (aside / "summary.json").exists()
    for name in ("explicit_banks-r0", "ddp_banks-r0"):
        env = json.loads((matrix / name / "env.json").read_text())
        started = dt.datetime.fromisoformat(env["started"]).timestamp()
        assert started >= t_kill - 1, (name, env["started"])  # written by the re-run, not by an orphan
        assert sorted(p.name for p in (matrix / name / "steps").iterdir()) == ["rank0.parquet", "rank1.parquet"]


def test_a_rank_share_and_an_exclusive_claim_exclude_each_other(tmp_path):
    lock = tmp_path / "run" / ".lock"
    share = hold_shared(lock)
    with pytest.raises(FolderInUse):
        claim(lock)
    share.close()
    claim(lock).close()


@pytest.mark.parametrize("args,incomplete,resume", [
    (["ablate", "--nproc", "2"], "is incomplete", False),
    (["ablate", "--nproc", "2", "--repeats", "2"], "is incomplete", True),
    (["train"], "is incomplete", False),
])
def test_ctrl_c_exits_130_at_once_and_says_what_is_incomplete(args, incomplete, resume, tmp_path):
    proc = _start(tmp_path, *args)
    family = _wait_for_ranks(proc, 2 if "ablate" in args else 0)
    if "train" in args:  # in-process: wait until it trains (its step table appears only at the end)
        deadline = time.monotonic() + 120
        while not list((tmp_path / "runs").glob("*/config.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 130, err[-3000:]
    assert elapsed < 2, elapsed  # the line comes at once; the rest is the interpreter exiting
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted: Ctrl-C stopped the explicit_banks run"), err
    assert incomplete in lines[0] and str(tmp_path / "runs") in lines[0]
    assert ("re-run the same command to resume" in lines[0]) == resume
    assert not _gone(family, timeout=10)
    assert not list((tmp_path / "tmp").glob("golfprof-launch-*"))


def test_a_rank_whose_launcher_is_already_gone_exits_at_start(tmp_path):
    """The parent-death signal is armed only once the rank's Python runs; a launcher that died before is seen."""
    from golfprof.ablations.ownership import LAUNCHER_PID

    code = "from golfprof.ablations.ownership import guard_rank; guard_rank(); print('alive')"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for launcher, expect in ((dead.pid, -signal.SIGKILL), (os.getpid(), 0)):
        r = subprocess.run([sys.executable, "-c", code], env={**os.environ, LAUNCHER_PID: str(launcher)},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == expect, (launcher, r.returncode, r.stderr)
        assert ("alive" in r.stdout) == (expect == 0)
