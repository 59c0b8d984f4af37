"""torch.profiler windows whose traces Perfetto and HolisticTraceAnalysis open directly."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity

from .rundir import RunDir
from .window import Window


def make_profiler(window: Window, run_dir: Path, rank: int, metadata: dict[str, Any], cuda: bool,
                  shapes: bool = False, stacks: bool = False, memory: bool = False) -> torch.profiler.profile:
    """One window; the trace is exported, gzipped, and moved into place atomically (RunDir.trace)."""

    def on_ready(prof: torch.profiler.profile) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "trace.json"
            prof.export_chrome_trace(str(raw))
            RunDir(run_dir).write_trace(rank, raw)

    # Kineto prints "USDT: ... profiler_start/stop" stage markers at every log level below 6, straight to the
    # process's stderr, through the progress bar. Quiet for golfprof's windows; KINETO_LOG_LEVEL set by the
    # user (e.g. 0 to debug the profiler) wins. Read when Kineto first starts, so set before the first window.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    prof = torch.profiler.profile(
        activities=activities,
        schedule=torch.profiler.schedule(wait=window.wait, warmup=window.warmup, active=window.active, repeat=1),
        on_trace_ready=on_ready,
        record_shapes=shapes,
        with_stack=stacks,
        profile_memory=memory,
    )
    prof.preset_metadata_json("golfprof", json.dumps(metadata, default=str))
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        # Kineto writes distributedInfo only for a process group; without it HTA cannot place the trace (and
        # tools disagree on its rank). Every golfprof trace says which rank of which world it is.
        prof.preset_metadata_json("distributedInfo", json.dumps({"backend": "none", "rank": rank, "world_size": 1}))
    return prof
