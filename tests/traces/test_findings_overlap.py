"""The headline overlap is golfprof's own (HTA's is a labelled compatibility column), findings below
the cost floor are dropped, and exposed communication is listed when it is the rank's largest cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from golfprof.profiler import phases as ph
from tests.traces.kineto_synth import TraceBuilder


def _launch_bound_optimizer(b: TraceBuilder, s: float, gpu_free_at: float, gaps_us: float, n: int = 10) -> None:
    """An optimizer phase spending 2 ms of CPU on ``n`` 5 µs kernels; from ``gpu_free_at`` on, the GPU
    idles ``gaps_us`` before each."""
    b.cpu(ph.OPTIMIZER, s, 2000)
    end = gpu_free_at
    for i in range(n):
        start = end + gaps_us
        b.kernel("adam_elementwise", s + 10 + 150 * i, start, 5)
        end = start + 5


def test_findings_below_the_cost_floor_are_noise(tmp_path: Path, analyze_json) -> None:
    """0.3 ms of a 345 ms step: the launch-bound phase and the tiny all-reduces are not listed."""
    b = TraceBuilder(world_size=2)
    for n, s in enumerate((0.0, 345000.0)):
        b.step(n, s, 345000)
        b.cpu(ph.FORWARD, s + 10, 5000)
        b.kernel("gemm_fwd", s + 20, s + 40, 340000)
        _launch_bound_optimizer(b, s + 338000, s + 340040, gaps_us=30)  # the GPU waits 10 x 30 µs for it
        for i in range(20):  # 20 x 12 µs: tiny, and 0.24 ms per step
            b.nccl("all_reduce", s + 342500 + 50 * i, s + 344000 + 50 * i, 12, nelems=4096)
    doc = analyze_json(b.write(tmp_path / "rank0.json"))
    p = doc["ranks"][0]["phases"][ph.OPTIMIZER]
    assert p["gpu_idle_ms"] == pytest.approx(0.3) and p["cpu_ms"] == pytest.approx(2.0)
    assert doc["diagnoses"] == []


def _exposed_step(b: TraceBuilder, s: float, optimizer_gaps_us: float | None) -> None:
    b.step(len(b.events), s, 40000)
    b.cpu(ph.FORWARD, s + 10, 1000)
    b.kernel("gemm_fwd", s + 20, s + 30, 35000)
    b.cpu(ph.bank_all_gather("mlp"), s + 100, 100)
    b.nccl("all_gather", s + 110, s + 35100, 1500)  # after the gemm: 1.5 ms exposed, 3.75% of the step
    if optimizer_gaps_us is not None:
        _launch_bound_optimizer(b, s + 35000, s + 36600, optimizer_gaps_us)


def test_exposed_communication_under_five_percent_when_it_is_the_largest_cost(tmp_path: Path, analyze_json) -> None:
    b = TraceBuilder(world_size=2)
    for s in (0.0, 40000.0):
        _exposed_step(b, s, optimizer_gaps_us=None)
    (d,) = analyze_json(b.write(tmp_path / "rank0.json"))["diagnoses"]
    assert d["kind"] == "exposed_comm" and d["cost_ms"] == pytest.approx(1.5)
    assert d["message"] == ("1.5 ms of communication per step is exposed (no compute kernel runs beside it), 4% of "
                            f"the step, most of it in {ph.bank_all_gather('mlp')} (1.5 ms); the largest cost found "
                            "on this rank")


def test_exposed_communication_under_five_percent_behind_a_larger_cost(tmp_path: Path, analyze_json) -> None:
    b = TraceBuilder(world_size=2)
    for s in (0.0, 40000.0):
        _exposed_step(b, s, optimizer_gaps_us=200)  # the optimizer's launches cost 2 ms of GPU idle per step
    kinds = [(d["kind"], d["cost_ms"]) for d in analyze_json(b.write(tmp_path / "rank0.json"))["diagnoses"]]
    assert kinds == [("launch_bound", pytest.approx(2.0))]


def test_headline_overlap_is_golfprofs_and_htas_is_labelled(tmp_path: Path, analyze_json) -> None:
    """A Triton cpu_op row with a stream sits beside each all-reduce: HTA counts it as compute, and
    drops the last step; golfprof counts GPU kernels over every profiled step."""
    b = TraceBuilder(world_size=2)
    for n in range(3):
        s = n * 10000.0
        b.step(n, s, 10000)
        b.cpu(ph.STEP, s + 5, 9900)
        b.nccl("all_reduce", s + 100, s + 1000, 1000)  # [1000, 2000)
        b.kernel("gemm", s + 150, s + 1900, 1000)  # 0.1 ms beside the all-reduce
        b.cpu("triton_poi_fused_0", s + 1000, 500, cat="cpu_op", args={"stream": 0})  # HTA: compute [1000, 1500)
    r = analyze_json(b.write(tmp_path / "rank0.json"))["ranks"][0]
    assert r["comm_comp_overlap_pct"] == pytest.approx(10.0)
    assert r["hta_overlap_pct"] == pytest.approx(60.0)
    assert r["notes"] == ["overlap 10.0% (GPU kernels, every profiled step) vs HTA's 60.0% (hta_overlap_pct): HTA "
                          "counts CPU-side rows with a stream as GPU compute (3 in the trace, Triton cpu_op launches, "
                          "1.5 ms), leaves out the last profiled step"]


def test_no_note_where_the_two_overlaps_agree(tmp_path: Path, analyze_json) -> None:
    b = TraceBuilder(world_size=2)
    b.step(1, 0, 10000)
    b.nccl("all_gather", 110, 200, 2000)
    b.kernel("gemm", 300, 1200, 500)
    r = analyze_json(b.write(tmp_path / "rank0.json"))["ranks"][0]
    assert r["comm_comp_overlap_pct"] == pytest.approx(25.0) == r["hta_overlap_pct"]
    assert not [n for n in r["notes"] if "hta_overlap_pct" in n]
