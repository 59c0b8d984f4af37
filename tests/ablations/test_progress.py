"""Quiet output (issue 17): the progress bar's ms/step is the running median, which one slow step on a loaded
machine cannot move, and a profiled run writes nothing to stderr (no Kineto USDT lines, no exit-time noise)."""

from __future__ import annotations

import os

from golfprof.ablations.instruments import Progress
from tests.cli import run


def test_progress_shows_the_running_median_not_the_last_step():
    bar = Progress(total=10, enabled=False)
    labels = [bar.label(3.5, ms) for ms in (190.0, 186.0, 5456.0)]
    assert labels[0] == "loss 3.5000  190.0 ms/step (median)"
    assert labels[-1] == "loss 3.5000  190.0 ms/step (median)"  # not 5456


def test_a_profiled_cpu_run_writes_nothing_to_stderr(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KINETO_LOG_LEVEL"}
    r = run("train", "--preset", "tiny", "--steps", "4", "--compile", "off", "--quiet", "--profile-steps", "0,1,2",
            "--runs-dir", tmp_path / "runs", "--data-dir", tmp_path / "data", env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == "", r.stderr[-2000:]
