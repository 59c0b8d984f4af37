"""A simulated GPU rank's run directory written from a synthetic Kineto trace (tests/traces/kineto_synth.py),
shaped like test_replay's: one profiled step, the recorder's collectives and phase marks, a measured comm table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from golfprof.profiler.collectives import COLUMNS
from golfprof.profiler.rundir import RunDir, write_json, write_parquet
from tests.traces.kineto_synth import TraceBuilder

# one bf16 GEMM [4096, 4096] x [4096, 4096]: 2·4096³ FLOPs, 3·4096²·2 bytes: far above the ridge point
GEMM_DIMS = [[4096, 4096], [4096, 4096]]
# one bf16 elementwise add of two [4096, 4096] tensors: 2 inputs and an output, 4096² FLOPs
ADD_DIMS = [[4096, 4096], [4096, 4096]]


def shaped(b: TraceBuilder, op: str, dims: list, kernel: str, launch: float, start: float, dur: float) -> None:
    """A cpu_op with record_shapes' args and the kernel it launches."""
    b.cpu(op, launch - 1, 3, cat="cpu_op", args={"Input Dims": dims, "Input type": ["c10::BFloat16"] * len(dims)})
    b.kernel(kernel, launch, start, dur)


def write_run(root: Path, kernels: list[tuple[str, str | None, float, float, float]], colls: list[dict[str, Any]],
              device: str = "NVIDIA H200", end: float = 310.0, step_ms: list[float] | None = None,
              measured_us: float = 150.0, table_extra: dict[str, Any] | None = None,
              phase_ms: dict[str, list[float]] | None = None) -> tuple[Path, Path]:
    """kernels: (name, op or None, launch, start, dur); colls: (seq, op, bytes, issue, wait or None, source);
    phase_ms: the phase timers, per phase one ms per step. Returns the run directory and its comm table (every
    collective measured at ``measured_us``)."""
    b = TraceBuilder(rank=0, world_size=8)
    b.step(3, 0, end)
    b.cpu("golfprof/step", 1, end - 10)
    b.cpu("golfprof/step/backward", 2, 100)
    b.cpu("golfprof/step/optimizer/muon", 150, 100)
    for name, op, launch, start, dur in kernels:
        if op is None:
            b.kernel(name, launch, start, dur)
        else:
            shaped(b, op, GEMM_DIMS if "mm" in op else ADD_DIMS, name, launch, start, dur)
    rows = []
    for c in colls:
        b.cpu(f"golfprof.comm#{c['seq']} {c['op']}", c["issue"], 2)
        if c.get("wait") is not None:
            b.cpu(f"golfprof.wait#{c['seq']}", c["wait"], 1)
        rows.append({"seq": c["seq"], "op": c["op"], "dtype": "bf16", "bytes": c["bytes"], "group_size": 8,
                     "phase": c.get("phase", "golfprof/step/backward"), "step": 3, "source": c.get("source", "dist"),
                     "async_op": True, "issue_ns": 0, "issued_ns": c.get("hook_ns", 0), "wait_ns": 0, "waited_ns": 0})
    rd = RunDir(root)
    b.write(rd.trace(0))
    write_json(rd.config, {"train": {"steps": 4}, "warmup_steps": 1,
                           "profile_window": {"wait": 1, "warmup": 1, "active": 2}})
    write_json(rd.summary, {"variant": "explicit_banks", "device": device, "ms_per_step": end / 1e3,
                            "optimizer_ms": 0.2, "simulated": {"world_size": 8, "nodes": 1, "ranks": [0]}})
    write_parquet(rd.path / "simulated" / "collectives-rank0.parquet", pd.DataFrame(rows, columns=COLUMNS))
    write_parquet(rd.path / "simulated" / "phase-events-rank0.parquet",
                  pd.DataFrame({"ns": [0], "entering": [True], "phase": ["golfprof/step"]}))
    if step_ms is not None:
        write_parquet(rd.steps(0), pd.DataFrame({"step": list(range(len(step_ms))), "ms": step_ms}))
    if phase_ms is not None:
        write_parquet(rd.phases(0), pd.DataFrame([{"step": i, "rank": 0, "phase": p, "ms": ms}
                                                  for p, per in phase_ms.items() for i, ms in enumerate(per)]))
    table = root.parent / f"{root.name}-table.json"
    measured = {op: {"8": [[1 << 20, measured_us]]} for op in ("all_gather", "all_reduce", "reduce_scatter")}
    table.write_text(json.dumps({"format": "golfprof-comm-table/1", "measured": measured} | (table_extra or {})))
    return rd.path, table
