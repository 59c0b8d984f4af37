"""ablations/script_summary.py: a profiled script's run record from its ranks' files (written here by hand)."""

from __future__ import annotations

import pandas as pd

from golfprof.ablations.script import PHASE_COLUMNS, STEP_COLUMNS
from golfprof.ablations.script_spec import ScriptSpec
from golfprof.ablations.script_summary import DATA_SIZED_NOTE, NO_STEPS_NOTE, build
from golfprof.profiler import names
from golfprof.profiler.collectives import COLUMNS
from golfprof.profiler.record import RunRecord, Simulated
from golfprof.profiler.rundir import RunDir, write_json, write_parquet
from golfprof.profiler.window import Window


def _rank(rd: RunDir, rank: int, ms: list[float], tokens: int, colls: list[tuple], simulated: bool = False) -> None:
    rd.write_steps(rank, pd.DataFrame([[s, rank, 1.0, m, 2, 2, 1, tokens] for s, m in enumerate(ms)],
                                      columns=STEP_COLUMNS))
    rd.write_phases(rank, pd.DataFrame([[s, rank, names.OPTIMIZER, 0.5] for s in range(len(ms))],
                                       columns=PHASE_COLUMNS))
    frame = pd.DataFrame([dict.fromkeys(COLUMNS) | {"op": op, "dtype": "f32", "bytes": b, "phase": names.BACKWARD,
                                                    "step": s, "data_dependent": dd} for op, b, s, dd in colls],
                         columns=COLUMNS)
    write_parquet(rd.collectives(rank) if simulated else rd.recorded_collectives(rank), frame)
    write_json(rd.script_rank(rank), {"outcome": "stopped", "peak_memory_mb": 10.0 + rank, "notes": []})


def test_headline_is_rank_0_over_the_timed_steps_and_tokens_sum_over_the_ranks(tmp_path):
    rd = RunDir(tmp_path)
    for r in (0, 1):
        _rank(rd, r, [50.0, 9.0, 7.0, 900.0, 5.0, 6.0], 64, [("all_reduce", 400, s, False) for s in range(6)])
    spec = ScriptSpec(script=str(tmp_path / "train.py"), steps=6, identity={"sha256": "ab"})
    rec = build(rd, spec, {"world_size": 2, "device": "cpu"}, warmup=1, window=Window(1, 1, 1), ranks=[0, 1])
    assert isinstance(rec, RunRecord) and rec.source.kind == "script" and rec.source.script_sha256 == "ab"
    # median of steps 4 and 5 (5, 6 ms): step 0 is warm-up, steps 1-2 the profiled window, step 3 (900 ms) paid the
    # trace's export, as a profiled script's step after the window does
    assert rec.ms_per_step == 5.5 and rec.ranks[0].timed_steps == 2
    assert rec.tokens_per_step == 128 and rec.tokens_per_s == 128 / 0.0055 and rec.optimizer_ms == 0.5
    assert rec.peak_memory_mb == 11.0 and rec.mfu_pct is None
    assert rec.extra["collectives_per_step"] == [{"op": "all_reduce", "dtype": "f32", "phase": names.BACKWARD,
                                                  "count_per_step": 1.0, "bytes_per_step": 400.0,
                                                  "median_bytes": 400.0, "data_dependent": False}]
    assert rec.extra["script"]["outcome"] == "stopped" and rec.extra["notes"] == []


def test_a_simulated_rank_stands_for_the_world_and_data_sized_collectives_are_said(tmp_path):
    rd = RunDir(tmp_path)
    _rank(rd, 0, [5.0, 5.0, 5.0], 32, [("all_to_all", 40, 2, True)], simulated=True)
    spec = ScriptSpec(script="t.py", simulate_world=8)
    rec = build(rd, spec, {"world_size": 8}, 1, Window(1, 1, 3), [0], simulated=Simulated(world_size=8))
    assert rec.tokens_per_step == 32 * 8 and rec.simulated.world_size == 8
    assert DATA_SIZED_NOTE in rec.extra["notes"]
    assert any("fewer than the profiler window's 5" in n for n in rec.extra["notes"])  # 3 steps made


def test_a_script_without_steps_says_how_to_find_them(tmp_path):
    rd = RunDir(tmp_path)
    _rank(rd, 0, [], 0, [])
    rec = build(rd, ScriptSpec(script="t.py"), {"world_size": 1}, 3, None, [0])
    assert rec.steps == 0 and rec.ms_per_step is None and NO_STEPS_NOTE in rec.extra["notes"]


def test_a_script_run_carries_its_window_check_and_gpu_state_without_the_export_step(tmp_path):
    """Steps 0 warm-up, 1-2 the window (slow), 3 the export (900 ms, left out of both sides of the check), 4-7 the
    rest; NVML's columns where the script's steps had them: throttled in two timed steps."""
    rd = RunDir(tmp_path)
    _rank(rd, 0, [50.0, 8.0, 8.0, 900.0, 5.0, 5.0, 5.0, 5.0], 64, [])
    steps = pd.read_parquet(rd.steps(0))
    for col, v in (("gpu_sm_clock_mhz", 1980.0), ("gpu_mem_clock_mhz", 3201.0), ("gpu_power_w", 690.0),
                   ("gpu_temp_c", 60.0)):
        steps[col] = v
    steps["gpu_throttled"] = [False] * 6 + [True, True]
    steps["gpu_clock_event_reasons"] = [0] * 6 + [4, 4]
    rd.write_steps(0, steps)
    spec = ScriptSpec(script=str(tmp_path / "train.py"), steps=8, identity={"sha256": "ab"})
    rec = build(rd, spec, {"world_size": 1, "device": "cuda"}, warmup=1, window=Window(1, 0, 2), ranks=[0])
    w = rec.window_check
    assert w["profiled_median_ms"] == 8.0 and w["others_median_ms"] == 5.0 and w["verdict"] != "typical"
    assert rec.gpu_state["throttled_timed_steps"] == 2 and rec.gpu_state["throttle_reasons"] == ["sw_power_cap"]
    assert rec.ranks[0].window_check == w
