"""Why the late rank is late: its GPU queue behind a phase's kernels, or its CPU launching late."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.traces.kineto_synth import TraceBuilder, golfprof_meta


def _run(root: Path, gpu_late_us: float = 0.0, cpu_late_us: float = 0.0) -> Path:
    """Two ranks; rank 1 runs an extra ``gpu_late_us`` kernel in phase:bwd before the reduce-scatter, or
    launches the reduce-scatter ``cpu_late_us`` later (a slow phase:data on its host)."""
    for rank in range(2):
        b = TraceBuilder(rank=rank, world_size=2, golfprof=golfprof_meta(rank, 2))
        for n, s in enumerate((0.0, 20000.0, 40000.0)):
            b.step(n, s, 20000)
            b.cpu("phase:bwd", s + 10, 1000)
            b.kernel("gemm_bwd", s + 20, s + 100, 2000)  # GPU [100, 2100)
            late = rank == 1
            if late and gpu_late_us:
                b.kernel("slow_attention_bwd", s + 30, s + 2100, gpu_late_us)
            launch = s + 1500 + (cpu_late_us if late else 0.0)
            b.cpu("phase:comm", launch - 10, 100)
            # NCCL finishes together on both ranks, 1 ms after the last one arrives
            arrive_late = s + 2100 + gpu_late_us + cpu_late_us
            start = arrive_late if late else s + 2100
            b.nccl("reduce_scatter", launch, start, arrive_late + 1000 - start)
        b.write(root / "trace" / f"rank{rank}.pt.trace.json.gz")
    return root


def test_the_late_rank_was_busy_with_a_phase(tmp_path: Path, analyze_json) -> None:
    doc = analyze_json(_run(tmp_path / "run", gpu_late_us=5000), "--phases", "^phase:")
    (d,) = [d for d in doc["diagnoses"] if d["kind"] == "rank_skew"]
    assert d["message"] == ("rank 0 waits 5.0 ms per step in reduce-scatter for rank 1 (83% of its reduce-scatter "
                            "time); rank 1 starts them 5.0 ms later: launched 0.0 ms later, then queued 5.6 ms on "
                            "its GPU behind 5.6 ms of earlier work, most of it phase:bwd's kernels "
                            "(slow_attention_bwd)")
    assert d["numbers"]["queue_phase"] == "phase:bwd" and d["numbers"]["start_late_ms"] == pytest.approx(5.0)


def test_the_late_rank_launched_late(tmp_path: Path, analyze_json) -> None:
    doc = analyze_json(_run(tmp_path / "run", cpu_late_us=4000), "--phases", "^phase:")
    (d,) = [d for d in doc["diagnoses"] if d["kind"] == "rank_skew"]
    assert d["message"].endswith("rank 1 starts them 4.0 ms later: its CPU launched them 4.0 ms later (the host "
                                 "was behind)")
    assert d["numbers"]["launch_late_ms"] == pytest.approx(4.0)
