"""golfprof's profiler windows: quiet on stderr, and every trace says its rank and world, one process or many."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from pathlib import Path
import torch
from golfprof.profiler.kineto import make_profiler
from golfprof.profiler.window import Window

prof = make_profiler(Window(wait=0, warmup=1, active=2), Path(sys.argv[1]), 0, {"variant": "x"}, cuda=False)
prof.start()
for _ in range(4):
    torch.ones(64).sum()
    prof.step()
prof.stop()
"""


def test_a_single_process_window_is_quiet_and_records_rank_0_of_1(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "KINETO_LOG_LEVEL"}
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "USDT" not in r.stderr and "profiler_start" not in r.stderr, r.stderr
    with gzip.open(tmp_path / "trace" / "rank0.pt.trace.json.gz", "rt") as f:
        trace = json.load(f)
    assert trace["distributedInfo"] == {"backend": "none", "rank": 0, "world_size": 1}
    assert trace["golfprof"] == {"variant": "x"}
