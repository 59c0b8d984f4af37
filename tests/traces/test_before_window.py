"""Work queued before the profiled window (GPU behind the CPU) belongs to no profiled step.

A compiled trainer queues a step ahead: the GPU runs step n's kernels during step n+1's CPU range,
so the first profiled steps' GPU time holds the kernels of the step before the window, whose
launches (and record_param_comms args) are not in the trace. They must be reported apart and be
left out of per-step counts, comm ms, skew and findings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from golfprof.traces import derived
from golfprof.traces.kernels import kernel_table
from golfprof.traces.load import load_trace
from tests.traces.kineto_synth import TraceBuilder, golfprof_meta
from tests.traces.trace_dirs import GPU_TRACES, PUBLIC

STEP_US = 10000.0
RS = "ncclDevKernel_ReduceScatter_Sum_RING_LL(ncclDevComm*, unsigned long, ncclWork*)"  # no dtype in the name
RS_US = {0: 800.0, 1: 300.0}  # rank 0's reduce-scatters last longer: it waits 0.5 ms in each for rank 1


def _gpu_step(b: TraceBuilder, rank: int, gpu_at: float, launch_at: float | None) -> None:
    """One step's GPU work starting at ``gpu_at``; launched at ``launch_at``, or queued before the trace."""
    def put(name: str, offset: float, start: float, dur: float, stream: int) -> None:
        if launch_at is None:
            b.queued(name, start, dur, stream=stream)
        else:
            b.kernel(name, launch_at + offset, start, dur, stream=stream)

    put("gemm", 10, gpu_at, 3000, 7)
    put("ns", 20, gpu_at + 3000, 1000, 8)  # hides the first reduce-scatter wholly
    for i in range(4):
        if launch_at is None:
            b.queued(RS, gpu_at + 3000 + 1000 * i, RS_US[rank], stream=20)
            continue
        t = launch_at + 100 + 50 * i
        b.cpu("record_param_comms", t, 20, cat="cpu_op",
              args={"Collective name": "_reduce_scatter_base", "In msg nelems": 1 << 21, "Out msg nelems": 1 << 20,
                    "dtype": "BFloat16", "Group size": 2})
        b.kernel(RS, t + 5, gpu_at + 3000 + 1000 * i, RS_US[rank], stream=20, api="cudaLaunchKernelExC")


def queued_run(root: Path) -> Path:
    """Two ranks, steps 1-3 profiled; each step's GPU work runs one step later than its launch."""
    for rank in range(2):
        b = TraceBuilder(rank=rank, world_size=2, golfprof=golfprof_meta(rank, 2))
        _gpu_step(b, rank, gpu_at=0.0, launch_at=None)  # step 0's work: queued before the window
        for n in (1, 2, 3):
            s = (n - 1) * STEP_US
            b.step(n, s, STEP_US)
            b.cpu("phase:train", s + 5, 900)
            _gpu_step(b, rank, gpu_at=s + STEP_US, launch_at=s + 10)
        b.write(root / "trace" / f"rank{rank}.pt.trace.json.gz")
    return root


def test_work_from_before_the_window_is_in_no_step(tmp_path: Path, analyze_json) -> None:
    doc = analyze_json(queued_run(tmp_path / "run"), "--phases", "^phase:")
    r0, r1 = doc["ranks"]
    for r in (r0, r1):
        (rs,) = r["collectives"]  # one row: the queued ones (no args) do not split off a blank-dtype row
        assert (rs["op"], rs["dtype"], rs["count_per_step"]) == ("reduce_scatter", "bf16", 4.0)
        assert rs["median_bytes"] == 2 << 21
        assert r["phases"]["phase:train"]["kernels"] == 6
        assert r["unattributed_gpu_ms"] == 0
    assert (r0["comm_ms"], r0["exposed_comm_ms"]) == (pytest.approx(3.2), pytest.approx(2.4))
    assert (r1["comm_ms"], r1["exposed_comm_ms"]) == (pytest.approx(1.2), pytest.approx(0.9))
    assert r0["before_window"] == {
        "gpu_ms": 7.2, "kernels": 6, "comm_ms": 3.2, "collectives": 4,
        "top": [{"kernel": RS, "op": "reduce_scatter", "count": 4, "ms": 3.2},
                {"kernel": "gemm", "op": None, "count": 1, "ms": 3.0},
                {"kernel": "ns", "op": None, "count": 1, "ms": 1.0}]}
    assert r1["before_window"]["gpu_ms"] == pytest.approx(5.2)
    (skew,) = [s for s in doc["skew"] if s["rank"] == 0]
    assert skew["wait_ms_per_step"] == pytest.approx(2.0) and skew["waits_for"] == 1 and skew["matched"] == 12
    (finding,) = [d for d in doc["diagnoses"] if d["kind"] == "rank_skew"]
    assert finding["cost_ms"] == pytest.approx(2.0)
    assert any(w.startswith("rank 0: 7.20 ms of GPU work (6 kernels, 4 of them collectives) was launched before "
                            "the profiled window") for w in doc["warnings"])


def test_kernel_table_and_timeline_leave_it_out_too(tmp_path: Path) -> None:
    from golfprof.dashboards import timeline

    trace = load_trace(queued_run(tmp_path / "run") / "trace" / "rank0.pt.trace.json.gz")
    k = kernel_table(trace, grouped=False).set_index("kernel")
    assert k.loc["gemm", "count_per_step"] == 1 and k.loc["ns", "ms_per_step"] == pytest.approx(1.0)
    rt = timeline.load_rank(trace, 0, re.compile("^phase:"))
    assert (rt.gpu.loc[~rt.gpu["in_step"], "step"] == -1).all() and (~rt.gpu["in_step"]).sum() == 6
    total = timeline.comm_overlap(rt).set_index("phase").loc["all phases"]
    assert total["comm_ms"] == pytest.approx(3.2) and total["kernels"] == 4


def test_real_trace_with_the_gpu_behind_the_cpu() -> None:
    """HTA's negative_queue_length trace: the GPU is ~155 ms behind; 872 kernels ran from before the window."""
    folder = PUBLIC / "negative_queue_length_values_check"
    if not folder.is_dir():
        pytest.skip(f"public traces not found at {PUBLIC}")
    w = derived.work(load_trace(next(folder.glob("*.json.gz"))))
    before = w.gpu[w.gpu["before"]]
    assert len(before) == 872 and before["dur"].sum() / 1e3 == pytest.approx(59.53, abs=0.01)
    assert (before["step_idx"] == -1).all()
    # the queued work ran in the first profiled step's time, before any kernel launched in the window
    assert before["end"].max() <= w.gpu.loc[~w.gpu["before"], "ts"].max()
    assert before["ts"].min() >= w.steps["ts"].iloc[0] and before["ts"].max() < w.steps["end"].iloc[0]


def test_real_compiled_trainer_queued_ahead(analyze_json) -> None:
    """A compiled trainer that never syncs in a step (benchmarks/device/foreign_compiled_trace.py, one H200):
    31 kernels (4.11 ms) of the step before the window ran inside it and are counted in no step."""
    folder = GPU_TRACES / "h200_foreign_compiled"
    if not folder.is_dir():
        pytest.skip("recorded trace not found")
    (r,) = analyze_json(folder, "--phases", "^phase:")["ranks"]
    b = r["before_window"]
    assert (b["kernels"], b["gpu_ms"], b["collectives"]) == (31, pytest.approx(4.11, abs=0.005), 0)
    assert r["rank_known"] is True and r["rank"] == 0  # one process, no distributedInfo: rank 0, not '?'
    per_step = sum(p["kernels"] + p["copies"] for p in r["phases"].values())
    w = derived.work(load_trace(next(folder.glob("*.json.gz"))))
    assert per_step * r["steps"] + 31 == len(w.gpu)  # every piece of GPU work once: in a step's phase, or before
