"""Lanes, merged segments and hidden/exposed communication from traces with known answers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from golfprof.dashboards import timeline as T
from golfprof.profiler.names import DEFAULT_PHASE_REGEX
from golfprof.traces.load import load_trace
from golfprof.traces.summary import summarize_rank
from tests.dashboards import dash_synth as S

PATTERN = re.compile(DEFAULT_PHASE_REGEX)


def _rank(path: Path, rank: int = 0) -> T.RankTrace:
    return T.load_rank(load_trace(path), rank, PATTERN)


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    return S.write_trace(tmp_path / "rank1.pt.trace.json.gz", S.trace_doc(1, 2, "explicit_banks", ag_b_us=300))


def test_overlap_per_phase_matches_the_schedule(synthetic: Path):
    ov = T.comm_overlap(_rank(synthetic, 1)).set_index("phase")
    expected = dict(S.EXPECTED) | {f"{S.MUON}/b_bank/all_gather": (0.3, 0.3), "all phases": (1.7, 0.89)}
    assert list(ov.index) == list(expected)  # step order, the union last
    for phase, (comm_ms, exposed_ms) in expected.items():
        assert ov.loc[phase, "comm_ms"] == pytest.approx(comm_ms, abs=1e-6)
        assert ov.loc[phase, "exposed_ms"] == pytest.approx(exposed_ms, abs=1e-6)
        assert ov.loc[phase, "hidden_ms"] == pytest.approx(comm_ms - exposed_ms, abs=1e-6)
    assert (ov["rank"] == 1).all()


def test_overlap_total_agrees_with_golfprof_analyze(synthetic: Path):
    """The dashboard's 'all phases' row is the rank figure `golfprof analyze` reports."""
    s = summarize_rank(load_trace(synthetic), 1, PATTERN)
    total = T.comm_overlap(_rank(synthetic, 1)).set_index("phase").loc["all phases"]
    assert total["comm_ms"] == pytest.approx(s.comm_ms)
    assert total["exposed_ms"] == pytest.approx(s.exposed_comm_ms)


def test_step_lanes_segments_and_exposed_intervals(synthetic: Path):
    rt = _rank(synthetic, 1)
    tl = T.step_timeline(rt, 6)
    seg = tl.segments
    assert list(dict.fromkeys(seg["lane"])) == ["r1 · CPU thread 100", "r1 · GPU stream 7 (compute)",
                                                "r1 · GPU stream 20 (comm)", "r1 · exposed comm"]
    assert tl.step == 6 and tl.cpu_step_ms == pytest.approx(10.0) and tl.end_ms == pytest.approx(10.0)
    assert tl.gpu_end_ms == pytest.approx(9.88)
    gpu = seg[seg["kind"] == "compute"].set_index("phase")
    # ten back-to-back kernels (2 µs apart) are one segment; backward kernels come from the autograd
    # thread while the main thread holds the backward range, and still count as backward
    for phase in ("golfprof/step/forward", "golfprof/step/backward"):
        assert gpu.loc[phase, "items"] == 10
    assert gpu.loc["golfprof/step/backward", "busy_ms"] == pytest.approx(2.78)
    comm = seg[seg["kind"] == "comm"]
    assert list(comm["label"]) == ["reduce_scatter", "reduce_scatter", "all_gather", "all_gather"]
    assert set(comm["phase"]) == {S.RS_LAUNCH, f"{S.MUON}/a_bank/all_gather", f"{S.MUON}/b_bank/all_gather"}
    exposed = seg[seg["kind"] == "exposed"][["start_ms", "end_ms"]].to_numpy()
    np.testing.assert_allclose(exposed, [[6.6, 7.12], [7.75, 7.82], [8.45, 8.75]], atol=1e-9)
    cpu = seg[seg["kind"] == "cpu"]
    assert (cpu["end_ms"].to_numpy()[:-1] <= cpu["start_ms"].to_numpy()[1:] + 1e-9).all()  # flattened: no overlap
    assert f"{S.MUON}/a_bank/wait" in set(cpu["phase"])


def test_one_origin_for_all_ranks(synthetic: Path):
    """Ranks are drawn on one clock: a rank that started its step 1 ms later is drawn 1 ms to the right."""
    rt = _rank(synthetic, 1)
    own = T.step_timeline(rt, 6)
    shifted = T.step_timeline(rt, 6, origin_us=T.step_start(rt, 6) - 1000)
    np.testing.assert_allclose(shifted.segments["start_ms"], own.segments["start_ms"] + 1.0)
    assert shifted.end_ms == pytest.approx(own.end_ms + 1.0) and shifted.cpu_step_ms == own.cpu_step_ms


def test_step_choice_and_unknown_step(synthetic: Path):
    rt = _rank(synthetic, 1)
    assert T.pick_step(rt) in S.PROFILED
    with pytest.raises(KeyError):
        T.step_timeline(rt, 99)


def test_cpu_only_trace_draws_collective_threads(tmp_path: Path):
    rt = _rank(S.write_trace(tmp_path / "rank0.json.gz", S.cpu_only_doc(0, 2)))
    seg = T.step_timeline(rt, 5).segments
    assert set(seg["kind"]) == {"cpu", "comm"}
    coll = seg[seg["kind"] == "comm"]
    assert set(coll["lane"]) == {"r0 · CPU thread 300 (collectives)"}
    assert list(coll["label"]) == ["gloo:reduce_scatter", "gloo:all_gather"]
    assert T.comm_overlap(rt).empty  # overlap is a GPU measure


def test_difference_of_interval_sets():
    a = (np.array([0.0, 10.0]), np.array([5.0, 20.0]))
    b = (np.array([1.0, 12.0]), np.array([2.0, 30.0]))
    s, e = T.difference(a, b)
    np.testing.assert_allclose(np.c_[s, e], [[0, 1], [2, 5], [10, 12]])
    assert T.difference(a, (np.zeros(0), np.zeros(0))) == a


def test_real_gpu_trace_stays_light_and_complete(gpu_run: Path):
    """Thousands of kernels per step fold into a few segments, and every kernel of the step is in one."""
    rt = _rank(next((gpu_run / "trace").glob("rank0.*")))
    step = T.pick_step(rt)
    tl = T.step_timeline(rt, step)
    seg = tl.segments
    assert len(seg) < 500
    own = rt.gpu[rt.gpu["step"] == step]
    assert len(own) > 5000
    drawn = seg[(seg["kind"] == "compute") & (seg["step"] == step)]
    assert drawn["items"].sum() == len(own)
    assert drawn["busy_ms"].sum() == pytest.approx(own["dur"].sum() / 1e3)
    assert {"cpu", "compute"} == set(seg["kind"])
    assert T.comm_overlap(rt).empty  # one GPU: no NCCL kernels


def _with_an_empty_step(path: Path) -> Path:
    """Three profiled steps; the middle one launches no GPU work. Steps 1 and 3 each run a 300 µs collective,
    100 µs then 200 µs of it under a compute kernel: per profiled step 0.2 ms of communication, 0.1 ms exposed."""
    from tests.traces.kineto_synth import TraceBuilder

    b = TraceBuilder()
    for n, t0, hidden in ((1, 0.0, 100.0), (2, 1000.0, None), (3, 2000.0, 200.0)):
        b.step(n, t0, 1000.0)
        b.cpu("golfprof/step/forward", t0 + 5, 400.0)
        b.cpu("golfprof/step/optimizer", t0 + 500, 400.0)
        if hidden is None:
            continue
        b.kernel("sm90_gemm_bf16", t0 + 10, t0 + 100, 200.0 + hidden)
        b.nccl("all_reduce", t0 + 510, t0 + 300.0, 300.0)
    return b.write(path)


def test_analyze_and_the_dashboard_agree_on_overlap_with_an_empty_step(tmp_path: Path):
    """Both divide by every profiled step, the one that launched nothing included (3 here, not 2)."""
    import json

    from tests.cli import invoke

    trace = _with_an_empty_step(tmp_path / "rank0.pt.trace.json")
    result = invoke("analyze", trace, "--json")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)["ranks"][0]
    total = T.comm_overlap(_rank(trace)).set_index("phase").loc["all phases"]
    assert r["steps"] == 3
    assert r["comm_ms"] == pytest.approx(0.2, abs=1e-6) and total["comm_ms"] == pytest.approx(0.2, abs=1e-9)
    assert r["exposed_comm_ms"] == pytest.approx(0.1, abs=1e-6) and total["exposed_ms"] == pytest.approx(0.1, abs=1e-9)
    assert r["comm_comp_overlap_pct"] == pytest.approx(100 * total["hidden_ms"] / total["comm_ms"], abs=0.01)
    assert total["kernels"] == pytest.approx(2 / 3)
