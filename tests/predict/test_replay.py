"""The replay on timelines with known answers, and a simulated world of one against its own measurement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from golfprof.predict import replay

INF = np.inf


def _role(items: list[tuple[float, float, float]], issue: list[float], wait: list[float], end: float,
          streams: list[int] | None = None) -> replay.RoleStep:
    """items: (launch, start, dur)."""
    a = np.array(items, float).reshape(-1, 3)
    return replay.RoleStep(launch=a[:, 0], start=a[:, 1], dur=a[:, 2],
                           stream=np.array(streams or [0] * len(a)), issue=np.array(issue, float),
                           wait=np.array(wait, float), end=end)


# A [0,10) launched at 0; B [11,16) launched at 11 (before the wait); C [20,30) launched at 20, after the
# wait at t'=15. One collective issued at t=10 lasting 15 µs: [10, 25).
ITEMS = [(0, 0, 10), (11, 11, 5), (20, 20, 10)]


def test_a_wait_holds_compute_until_the_collective_ends_and_the_rest_is_exposed() -> None:
    role = _role(ITEMS, issue=[10], wait=[15], end=31)
    rep = replay.replay_step([role], np.array([15.0]))
    tl = rep.roles[0]
    assert (rep.comm_start[0], rep.comm_end[0]) == (10, 25)
    np.testing.assert_allclose(tl.start, [0, 11, 25])  # C waits for the end of the collective
    np.testing.assert_allclose(tl.end, [10, 16, 35])
    assert tl.step_end == 36 and tl.delta == 5  # the 1 µs tail after C is kept
    exposed, overlapped = replay.exposed(rep.comm_start, rep.comm_end, tl.start, tl.end)
    assert exposed == pytest.approx(10.0)  # [10,11) and [16,25): no compute under them
    assert overlapped == pytest.approx(5.0)  # B


def test_interference_slows_the_compute_under_communication() -> None:
    role = _role(ITEMS, issue=[10], wait=[15], end=31)
    tl = replay.replay_step([role], np.array([15.0]), interference=0.5).roles[0]
    np.testing.assert_allclose(tl.end, [10, 11 + 5 * 1.5, 35])  # B: 5 µs of work at 2/3 speed
    rep = replay.replay_step([role], np.array([15.0]), interference=0.5)
    assert replay.exposed(rep.comm_start, rep.comm_end, tl.start, tl.end)[0] == pytest.approx(1 + (25 - 18.5))


def test_slowed_end_crosses_several_busy_intervals() -> None:
    assert replay.slowed_end(0, 10, [(2, 4), (6, 8)], 1.0) == pytest.approx(12)  # work 2 + 1 + 2 + 1, then 4 free
    assert replay.slowed_end(5, 3, [(0, 4)], 1.0) == 8  # busy interval already over
    assert replay.slowed_end(0, 3, [(1, 100)], 0.0) == 3


def test_a_collective_starts_when_the_slowest_role_issued_it() -> None:
    fast = _role(ITEMS, issue=[10], wait=[15], end=31)
    slow = _role([(0, 0, 18), (18, 18, 2)], issue=[18], wait=[18], end=21)  # issues at 18, waits at once
    rep = replay.replay_step([fast, slow], np.array([15.0]))
    assert (rep.comm_start[0], rep.comm_end[0]) == (18, 33)
    assert rep.roles[0].start[2] == 33 and rep.roles[1].start[1] == 33
    assert rep.roles[0].delta == pytest.approx(13) and rep.roles[1].delta == pytest.approx(15)


def test_collectives_run_one_after_another_in_issue_order() -> None:
    role = _role([(0, 0, 1), (5, 5, 1)], issue=[1, 2], wait=[INF, 5], end=6)
    rep = replay.replay_step([role], np.array([10.0, 10.0]))
    assert list(rep.comm_start) == [1, 11] and list(rep.comm_end) == [11, 21]
    assert rep.roles[0].start[1] == 21  # waited on the second, which queued behind the first
    assert rep.roles[0].step_end == 22


def test_unwaited_collectives_still_end_the_step() -> None:
    role = _role([(0, 0, 5)], issue=[1], wait=[INF], end=5)
    tl = replay.replay_step([role], np.array([20.0])).roles[0]
    # issued at 1, after a kernel that runs to 5: the collective waits for it (NCCL's stream waits on an event
    # recorded after that kernel), [5, 25); the end-of-step synchronize waits for the communication stream
    assert tl.step_end == 25 and tl.ready[0] == 5


def test_no_collectives_predicts_the_measurement_exactly() -> None:
    role = _role([(0, 0, 3), (1, 4, 2), (2, 9, 1)], issue=[], wait=[], end=11, streams=[0, 0, 1])
    tl = replay.replay_step([role], np.zeros(0), interference=0.3).roles[0]
    np.testing.assert_allclose(tl.start, role.start)
    assert tl.delta == 0 and tl.step_end == 11


def test_cpu_timeline_is_cut_at_every_call_and_wait() -> None:
    ns = lambda us: int(us * 1000)  # noqa: E731
    events = pd.DataFrame({"ns": [ns(100), ns(110), ns(140), ns(200)], "entering": [True, True, False, False],
                           "phase": ["golfprof/step", "golfprof/step/optimizer", "golfprof/step/optimizer",
                                     "golfprof/step"]})
    colls = pd.DataFrame({"seq": [0], "step": [0], "op": ["all_reduce"], "bytes": [4096],
                          "issue_ns": [ns(120)], "wait_ns": [ns(130)]})
    rs = replay.cpu_role_steps(colls, events, [0])[0]
    np.testing.assert_allclose(rs.start, [0, 10, 20, 30, 40])  # optimizer [10, 40), call at 20, wait at 30
    np.testing.assert_allclose(rs.dur, [10, 10, 10, 10, 60])
    assert list(rs.issue) == [20] and list(rs.wait) == [30] and rs.end == 100
    tl = replay.replay_step([rs], np.array([25.0])).roles[0]
    assert tl.delta == pytest.approx(15)  # waited at 30 for an end at 45
    marks = replay.step_phase_marks(events, [0])[0]
    assert marks["golfprof/step/optimizer"] == (10, 40)
    assert replay.delay_at(rs, tl, 40) == pytest.approx(15)


def test_simulated_world_of_one_predicts_its_measured_step(tmp_path: Path) -> None:
    """World 1 exchanges nothing: the prediction, through the replay, the predicted trace and the
    analysis of it, must be the run's own measured step (within 1%)."""
    from golfprof.ablations.simulate import simulate
    from golfprof.ablations.spec import RunSpec
    from golfprof.ablations.variants import resolve
    from golfprof.model.config import TINY_MODEL, TINY_TRAIN, RunConfig, replace
    from golfprof.predict.predict import predict

    run = RunConfig("tiny", TINY_MODEL, replace(TINY_TRAIN, steps=6), resolve("explicit_banks"), "explicit_banks")
    spec = RunSpec(config=run.to_dict(), runs_dir=str(tmp_path / "runs"), data_dir=str(tmp_path / "data"),
                   device="cpu", quiet=True, evaluate=False, profile="off")
    out = simulate(spec, 1, "all")
    doc = predict(Path(out["run_dir"]), "h200")
    p = doc["prediction"]
    assert doc["predicted"] is True and p["world_size"] == 1 and p["comm_ms"] == 0
    assert p["ms_per_step"] == pytest.approx(out["ms_per_step"], rel=0.01)
    assert doc["ranks"][0]["step_ms"] == pytest.approx(out["ms_per_step"], rel=0.01)  # through the trace analysis
    assert p["optimizer_ms"] == pytest.approx(out["optimizer_ms"], rel=0.01)
    lo, hi = p["interval_ms"]  # the rank's own spread around its median: it holds the measured step
    assert lo <= p["ms_per_step"] <= hi and lo <= out["ms_per_step"] <= hi
    saved = json.loads((Path(out["run_dir"]) / "simulated" / "predicted.json").read_text())
    assert saved["predicted"] is True and set(saved) >= {"path", "ranks", "skew", "diagnoses", "warnings"}


def test_simulated_world_of_three_predicts_communication(tmp_path: Path) -> None:
    from golfprof.ablations.simulate import simulate
    from golfprof.ablations.spec import RunSpec
    from golfprof.ablations.variants import resolve
    from golfprof.model.config import TINY_MODEL, TINY_TRAIN, RunConfig, replace
    from golfprof.predict.predict import predict

    run = RunConfig("tiny", TINY_MODEL, replace(TINY_TRAIN, steps=4), resolve("explicit_banks"), "explicit_banks")
    spec = RunSpec(config=run.to_dict(), runs_dir=str(tmp_path / "runs"), data_dir=str(tmp_path / "data"),
                   device="cpu", quiet=True, evaluate=False, profile="off")
    out = simulate(spec, 3, "all")
    doc = predict(Path(out["run_dir"]), "h100")
    p = doc["prediction"]
    assert p["simulated_ranks"] == [0, 2] and len(doc["ranks"]) == 2
    ops = {c["op"] for c in p["collectives_per_step"]}
    assert {"reduce_scatter", "all_gather", "all_reduce"} <= ops
    assert p["comm_ms"] > 0 and p["ms_per_step"] >= min(p["ms_per_step_by_role"])
    r0 = doc["ranks"][0]
    assert r0["comm_ms"] == pytest.approx(p["comm_ms"], rel=0.05)  # the trace analysis sees the modelled kernels
    assert any(c["op"] == "reduce_scatter" for c in r0["collectives"])
    assert (Path(out["run_dir"]) / "simulated" / "trace" / "rank2.pt.trace.json.gz").is_file()


def test_gpu_trace_replay_drops_the_fake_fills_and_waits_where_the_recorder_waited(tmp_path: Path) -> None:
    """A synthetic simulated H200 rank: kernels A [0,100) and B [125,200) launched before the wait, C
    [200,300) after it; one all-gather issued at 110 (its fake fill kernel [120,125) is not compute) and
    waited at 130, modelled at exactly 150 µs by a measured table: [110, 260), so C runs [260, 360)."""
    from golfprof.predict.predict import predict
    from golfprof.profiler.rundir import write_parquet

    b = _optimizer_step_with_kernel_a()
    b.cpu("golfprof.comm#0 all_gather", 110, 5)
    b.kernel("fill_copy", 112, 120, 5)
    b.kernel("gemm_B", 120, 125, 75)
    b.cpu("golfprof.wait#0", 130, 1)
    b.kernel("gemm_C", 140, 200, 100)
    rd, table = _synthetic_gpu_run(tmp_path, b, "explicit_banks", {"op": "all_gather", "async_op": True,
                                                                   "phase": "golfprof/step/optimizer"})
    doc = predict(rd.path, table)
    p = doc["prediction"]
    assert p["replayed_from"].startswith("kineto")
    assert p["ms_per_step"] == pytest.approx(0.370)  # 310 µs measured + 60 µs that C waited
    assert p["exposed_comm_ms"] == pytest.approx(0.075)  # [110,125) and [200,260)
    assert p["comm_comp_overlap_pct"] == pytest.approx(100 * 75 / 150)
    assert p["optimizer_ms"] == pytest.approx(0.2 + 0.060)  # C was launched inside the optimizer
    assert p["exposed_comm_ms_by_phase"] == {"golfprof/step/optimizer": pytest.approx(0.075)}
    r0 = doc["ranks"][0]
    assert r0["exposed_comm_ms"] == pytest.approx(0.075, abs=1e-3) and r0["step_ms"] == pytest.approx(0.370)
    assert [c["op"] for c in r0["collectives"]] == ["all_gather"]
    # with the rank's step timers, the prediction stands on its median timed step, not the profiled one
    write_parquet(rd.steps(0), pd.DataFrame({"step": [0, 1, 2, 3], "ms": [9.0, 0.29, 0.31, 0.30]}))
    assert predict(rd.path, table)["prediction"]["ms_per_step"] == pytest.approx(0.30 + 0.060)


def test_a_blocking_collective_holds_the_compute_launched_after_its_call(tmp_path: Path) -> None:
    """A blocking all-reduce (async_op false, no wait range: #315's flat update all-reduce) issued at 110, its call
    returning at 115, modelled at 150 µs: [110, 260). Kernel C, launched after the call (measured [200, 300)),
    uses its result, so it runs [260, 360) and the whole collective is exposed."""
    from golfprof.predict.predict import predict
    from golfprof.profiler.rundir import write_parquet

    b = _optimizer_step_with_kernel_a()
    b.cpu("golfprof.comm#0 all_reduce", 110, 5)
    b.kernel("gemm_C", 140, 200, 100)
    coll = {"op": "all_reduce", "async_op": False, "phase": "golfprof/step/optimizer/muon/all_reduce"}
    rd, table = _synthetic_gpu_run(tmp_path, b, "ddp_round_robin", coll)
    p = predict(rd.path, table)["prediction"]
    assert p["ms_per_step"] == pytest.approx(0.370)  # 310 µs measured + the 60 µs C waited
    assert p["exposed_comm_ms"] == pytest.approx(0.150)
    # the same call made async and never waited: C runs where it was measured and only [110, 200) is exposed
    recorded = rd.path / "simulated" / "collectives-rank0.parquet"
    write_parquet(recorded, pd.read_parquet(recorded).assign(async_op=True))
    p = predict(rd.path, table)["prediction"]
    assert p["ms_per_step"] == pytest.approx(0.310) and p["exposed_comm_ms"] == pytest.approx(0.090)
    # a recording without the async_op column reads as that: no blocking call known
    write_parquet(recorded, pd.read_parquet(recorded).drop(columns="async_op"))
    assert predict(rd.path, table)["prediction"]["ms_per_step"] == pytest.approx(0.310)


def _synthetic_gpu_run(path: Path, b, variant: str, coll: dict) -> tuple:
    """A simulated H200 rank 0 of 8 from a TraceBuilder and its one recorded collective (step 3 of 4), with a
    measured comm table holding the collective at 150 µs: (run directory, table path)."""
    from golfprof.profiler.rundir import RunDir, write_json, write_parquet

    rd = RunDir(path / "run")
    b.write(rd.trace(0))
    write_json(rd.config, {"train": {"steps": 4}, "warmup_steps": 1, "profile_window": {"wait": 1, "warmup": 1,
                                                                                      "active": 2}})
    write_json(rd.summary, {"variant": variant, "device": "NVIDIA H200", "ms_per_step": 0.31,
                            "optimizer_ms": 0.2, "simulated": {"world_size": 8, "nodes": 1, "ranks": [0]}})
    colls = pd.DataFrame([{"seq": 0, "dtype": "bf16", "bytes": 1 << 20, "group_size": 8, "step": 3, "source": "dist",
                           "issue_ns": 0, "issued_ns": 0, "wait_ns": 0, "waited_ns": 0, **coll}])
    write_parquet(rd.path / "simulated" / "collectives-rank0.parquet", colls)
    write_parquet(rd.path / "simulated" / "phase-events-rank0.parquet",
                  pd.DataFrame({"ns": [0], "entering": [True], "phase": ["golfprof/step"]}))
    table = path / "table.json"
    measured = {coll["op"]: {"8": [[1 << 20, 150.0]]}}
    table.write_text(json.dumps({"format": "golfprof-comm-table/1", "measured": measured}))
    return rd, table


def _optimizer_step_with_kernel_a():
    """A TraceBuilder of rank 0 of 8 holding profiled step 3 ([0, 310) µs, its optimizer phase from 2) and kernel A
    [0, 100), launched at 5."""
    from tests.traces.kineto_synth import TraceBuilder

    b = TraceBuilder(rank=0, world_size=8)
    b.step(3, 0, 310)
    b.cpu("golfprof/step", 1, 300)
    b.cpu("golfprof/step/optimizer", 2, 150)
    b.kernel("gemm_A", 5, 0, 100)
    return b
