"""GPU time lands in the right phase: every hard case of launch -> kernel matching, pinned by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from golfprof.profiler import phases as ph
from golfprof.traces import attribute
from golfprof.traces.command import DEFAULT_PHASE_REGEX
from tests.traces.kineto_synth import AUTOGRAD_TID, TraceBuilder


def full_step(b: TraceBuilder, s: float, n: int) -> None:
    """One 10 ms step with every launch path; the expected figures are spelled out in the tests."""
    b.step(n, s, 10000)
    b.cpu(ph.STEP, s + 10, 9900)
    b.cpu(ph.FORWARD, s + 100, 2900)
    b.kernel("sm90_gemm_fwd", s + 200, s + 300, 500)
    b.kernel("triton_red_fused_0", s + 300, s + 800, 200, api="cuLaunchKernel", api_cat="cuda_driver")
    b.memset(s + 400, s + 1000, 50)
    b.cpu(ph.BACKWARD, s + 3000, 3000)  # the main thread blocks in .backward() ...
    b.kernel("sm90_gemm_bwd", s + 3100, s + 3200, 700, tid=AUTOGRAD_TID)  # ... the autograd thread launches
    b.kernel("triton_bwd_0", s + 3150, s + 3900, 300, tid=AUTOGRAD_TID, api="cuLaunchKernel", api_cat="cuda_driver")
    b.cpu(ph.OPTIMIZER, s + 6000, 3800)
    b.cpu(ph.RS_LAUNCH, s + 6010, 100)
    b.nccl("reduce_scatter", s + 6020, s + 6100, 1000)  # GPU [6100, 7100]
    b.cpu(ph.MUON, s + 6200, 3000)
    b.cpu(ph.bank_orthogonalize("b0"), s + 6300, 1000)
    b.graph(s + 6400, [("ns_iter_a", s + 6500, 100), ("ns_iter_b", s + 6600, 100), ("ns_iter_c", s + 6700, 100)])
    b.cpu(ph.bank_all_gather("b0"), s + 7400, 100)
    b.nccl("all_gather", s + 7410, s + 7500, 300)  # nothing computes beside it: all exposed
    b.memcpy(s + 9300, s + 9400, 50)
    b.kernel("stray_kernel", s + 9950, s + 9960, 20)  # in the profiler step, outside every phase


@pytest.fixture
def full_trace(tmp_path: Path) -> Path:
    b = TraceBuilder()
    full_step(b, 0, 1)
    full_step(b, 10000, 2)
    return b.write(tmp_path / "rank0.pt.trace.json.gz")


def test_default_regex_is_profilers() -> None:
    assert DEFAULT_PHASE_REGEX == ph.DEFAULT_PHASE_REGEX


def test_every_launch_path_is_attributed_per_step(full_trace: Path, analyze_json) -> None:
    r = analyze_json(full_trace)["ranks"][0]
    p = r["phases"]
    assert r["steps"] == 2 and r["step_ms"] == pytest.approx(10.0)
    # cuda_runtime + cuda_driver (Triton) kernels and a memset, launched in forward: kernels and copies apart
    assert p[ph.FORWARD]["gpu_kernel_ms"] == pytest.approx(0.7)
    assert p[ph.FORWARD]["gpu_copy_ms"] == pytest.approx(0.05)
    assert p[ph.FORWARD]["kernels"] == 2 and p[ph.FORWARD]["copies"] == 1
    # backward kernels come from the autograd thread; the range is on the main thread
    assert p[ph.BACKWARD]["gpu_kernel_ms"] == pytest.approx(1.0)
    # a CUDA graph: three kernels share the cudaGraphLaunch correlation id
    orth = p[ph.bank_orthogonalize("b0")]
    assert orth["kernels"] == 3 and orth["gpu_kernel_ms"] == pytest.approx(0.3)
    # nesting: once in the innermost phase, again in every enclosing total
    assert p[ph.MUON]["gpu_kernel_ms"] == pytest.approx(0.6) and p[ph.MUON]["gpu_self_ms"] == 0
    assert p[ph.OPTIMIZER]["gpu_kernel_ms"] == pytest.approx(1.6)
    assert p[ph.OPTIMIZER]["gpu_copy_ms"] == pytest.approx(0.05)
    assert p[ph.OPTIMIZER]["gpu_self_ms"] == pytest.approx(0.05)  # the memcpy
    assert p[ph.STEP]["gpu_kernel_ms"] == pytest.approx(0.7 + 1.0 + 1.6)
    assert p[ph.STEP]["gpu_copy_ms"] == pytest.approx(0.1)
    assert p[ph.STEP]["kernels"] == 2 + 2 + 5 and p[ph.STEP]["copies"] == 2
    assert p[ph.STEP]["gpu_busy_ms"] == pytest.approx(3.1)  # Newton-Schulz runs inside the reduce-scatter
    assert r["unattributed_gpu_ms"] == pytest.approx(0.02)
    assert p[ph.FORWARD]["cpu_ms"] == pytest.approx(2.9) and p[ph.OPTIMIZER]["cpu_ms"] == pytest.approx(3.8)
    assert p[ph.MUON]["parent"] == ph.OPTIMIZER and p[ph.MUON]["depth"] == 2
    assert r["gpu_busy_pct"] == pytest.approx(31.2)


def test_communication_per_phase_and_exposed(full_trace: Path, analyze_json) -> None:
    r = analyze_json(full_trace)["ranks"][0]
    p = r["phases"]
    assert p[ph.RS_LAUNCH]["comm_ms"] == pytest.approx(1.0)
    assert p[ph.RS_LAUNCH]["exposed_comm_ms"] == pytest.approx(0.7)  # 0.3 ms of Newton-Schulz beside it
    assert p[ph.bank_all_gather("b0")]["exposed_comm_ms"] == pytest.approx(0.3)
    assert p[ph.OPTIMIZER]["comm_ms"] == pytest.approx(1.3)
    assert p[ph.FORWARD]["comm_ms"] == 0
    assert r["comm_ms"] == pytest.approx(1.3) and r["exposed_comm_ms"] == pytest.approx(1.0)
    ops = {c["op"]: c for c in r["collectives"]}
    assert set(ops) == {"reduce_scatter", "all_gather"}
    assert ops["reduce_scatter"]["dtype"] == "bf16" and ops["reduce_scatter"]["algo"] == "RING"
    assert ops["reduce_scatter"]["count_per_step"] == 1


def test_kernel_without_launch_in_trace_is_unattributed() -> None:
    gpu = pd.DataFrame({"correlation": [5, 6, 7], "ts": [0.0, 1.0, 2.0], "end": [1.0, 2.0, 3.0]})
    # correlation 7 appears twice on the CPU side: the first call wins
    launch = pd.DataFrame({"correlation": [7, 5, 7], "ts": [3.5, 0.5, 0.7], "thread": [1, 1, 1]})
    ranges = pd.DataFrame({"name": ["a", "b"], "thread": [1, 1], "ts": [0.0, 3.0], "end": [1.0, 4.0]})
    assert attribute.attribute(gpu, launch, ranges).tolist() == [0, -1, 1]


def test_innermost_prefers_the_launching_thread() -> None:
    # thread 1: a [0, 100) holding b [10, 20); thread 2: c [5, 50)
    ranges = pd.DataFrame({"name": ["a", "b", "c"], "thread": [1, 1, 2], "ts": [0.0, 10, 5], "end": [100.0, 20, 50]})
    got = attribute.innermost(ranges, np.array([1, 1, 2, 3, 3, 3]), np.array([15.0, 30, 15, 15, 7, 70]))
    # own thread first; a thread without ranges falls back to the latest-started open range anywhere
    assert got.tolist() == [1, 0, 2, 1, 2, 0]


def test_parents_cross_threads_only_without_an_own_container() -> None:
    ranges = pd.DataFrame({
        "name": ["step", "backward", "hook", "inner"],
        "thread": [1, 1, 2, 2],
        "ts": [0.0, 10, 20, 21],
        "end": [100.0, 60, 30, 29],
    })
    par = attribute.parents(ranges)
    assert par.tolist() == [-1, 0, 1, 2]
    assert attribute.chains(ranges["name"].to_numpy(), par)[3] == ("inner", "hook", "backward", "step")
    assert attribute.chains(np.array(["x", "x", "y"]), np.array([-1, 0, 1])) == [("x",), ("x",), ("y", "x")]


def test_hook_range_on_autograd_thread_nests_under_backward(tmp_path: Path, analyze_json) -> None:
    b = TraceBuilder()
    b.step(1, 0, 10000)
    b.cpu(ph.STEP, 10, 9900)
    b.cpu(ph.BACKWARD, 3000, 3000)
    hook = "golfprof/step/backward/grad_hook"
    b.cpu(hook, 3500, 100, tid=AUTOGRAD_TID)
    b.nccl("all_reduce", 3510, 3600, 400, tid=AUTOGRAD_TID)
    b.kernel("bwd_gemm", 3700, 3700, 100, tid=AUTOGRAD_TID)
    p = analyze_json(b.write(tmp_path / "rank0.json"))["ranks"][0]["phases"]
    assert p[hook]["parent"] == ph.BACKWARD and p[hook]["gpu_kernel_ms"] == pytest.approx(0.4)
    assert p[ph.BACKWARD]["gpu_kernel_ms"] == pytest.approx(0.5)
    assert p[ph.BACKWARD]["gpu_self_ms"] == pytest.approx(0.1)


def test_same_name_nested_in_itself_counts_once(tmp_path: Path, analyze_json) -> None:
    b = TraceBuilder()
    b.step(1, 0, 1000)
    b.cpu("golfprof/x", 0, 500)
    b.cpu("golfprof/x", 100, 100)
    b.kernel("k", 150, 150, 10)
    p = analyze_json(b.write(tmp_path / "t.json"))["ranks"][0]["phases"]
    assert p["golfprof/x"]["gpu_kernel_ms"] == pytest.approx(0.01)
    assert p["golfprof/x"]["cpu_ms"] == pytest.approx(0.5)


def test_gpu_idle_is_charged_to_the_phase_whose_kernel_ends_it(tmp_path: Path, analyze_json) -> None:
    b = TraceBuilder()
    b.cpu(ph.FORWARD, -6000, 2000)  # before profiling proper: outside every step, not counted
    b.kernel("warmup", -5900, -5000, 1000)
    b.step(1, 0, 5000)
    b.cpu(ph.STEP, 10, 4900)
    b.cpu(ph.DATA, 20, 1500)
    b.kernel("h2d", 1400, 1500, 100)  # the GPU idled since the step began, 1.5 ms, waiting for data
    b.cpu(ph.FORWARD, 1600, 2000)
    b.kernel("gemm", 1610, 1700, 300)  # 0.1 ms gap after h2d
    p = analyze_json(b.write(tmp_path / "t.json"))["ranks"][0]["phases"]
    assert p[ph.DATA]["gpu_idle_ms"] == pytest.approx(1.5)
    assert p[ph.FORWARD]["gpu_idle_ms"] == pytest.approx(0.1)
    assert p[ph.FORWARD]["calls"] == 1 and p[ph.FORWARD]["gpu_kernel_ms"] == pytest.approx(0.3)
    assert p[ph.STEP]["gpu_idle_ms"] == pytest.approx(1.6)
