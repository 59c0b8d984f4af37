"""Is the profiled window typical? The profiled steps against the run's step timers (steps/rank*.parquet)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from golfprof.traces.typical import window_vs_timers
from tests.traces.kineto_synth import TraceBuilder, golfprof_meta
from tests.traces.trace_dirs import GPU_TRACES


def _run(root: Path, timer_ms: list[float], profiled: tuple[int, ...]) -> Path:
    b = TraceBuilder(rank=0, world_size=1, golfprof=golfprof_meta(0, 1))
    for i, n in enumerate(profiled):
        b.step(n, i * 1000.0, 1000)
        b.cpu("golfprof/step", i * 1000.0 + 5, 990)
        b.kernel("gemm", i * 1000.0 + 10, i * 1000.0 + 20, 900)
    b.write(root / "trace" / "rank0.pt.trace.json.gz")
    (root / "steps").mkdir()
    pd.DataFrame({"step": range(len(timer_ms)), "rank": 0, "ms": timer_ms}).to_parquet(root / "steps" / "rank0.parquet")
    (root / "summary.json").write_text(json.dumps({"ms_per_step": 1.0, "warmup_steps": 1}))
    (root / "config.json").write_text("{}")
    return root


def test_a_slow_window_is_flagged(tmp_path: Path, analyze_json) -> None:
    """As on one H200: unprofiled steps at 635-645 ms, a three-step window at 747 with data stalls."""
    timers = [40000.0] + [640.0, 645.0, 635.0, 642.0, 638.0] + [700.0, 810.0, 731.0] + [641.0, 644.0]
    r = analyze_json(_run(tmp_path / "run", timers, (6, 7, 8)))["ranks"][0]
    w = r["window_check"]
    assert w["verdict"] == "slow" and w["profiled_median_ms"] == 731.0 and w["others_median_ms"] == 641.0
    assert w["outliers"] == {"6": 700.0, "7": 810.0, "8": 731.0} and w["others"] == 7
    (note,) = [n for n in r["notes"] if "profiled steps" in n]
    assert note.startswith("the profiled steps ran at 731.0 ms/step (step timers), the run's 7 other steps at 641.0 "
                           "(p25-p75 639.0-643.0): the window ran 14% slower than the rest, catching step 6 700.0 ms")


def test_one_outlier_in_a_typical_window(tmp_path: Path) -> None:
    steps = pd.DataFrame({"step": range(10), "ms": [9e3, 100, 101, 99, 100, 100, 100, 160, 101, 100]})
    w = window_vs_timers(steps, [6, 7, 8])
    assert w["verdict"] == "outlier" and w["outliers"] == {7: 160.0}
    assert window_vs_timers(steps, [2, 3, 4])["verdict"] == "typical"
    assert window_vs_timers(steps.head(5), [2, 3, 4]) is None  # too few other steps to say


def test_real_h100_window_is_typical() -> None:
    """30 timed steps of the full preset on one H100, steps 4-6 profiled: typical, while 3 of the 24 other
    steps are data-stall outliers (770, 789, 764 ms against a 713 ms median)."""
    run = GPU_TRACES / "h100_full_explicit_banks"
    if not (run / "steps" / "rank0.parquet").exists():
        pytest.skip("recorded run not found")
    warmup = json.loads((run / "summary.json").read_text())["warmup_steps"]
    w = window_vs_timers(pd.read_parquet(run / "steps" / "rank0.parquet"), [4, 5, 6], warmup)
    assert w["verdict"] == "typical" and w["others"] == 24 and w["others_outliers"] == 3
    assert w["others_median_ms"] == pytest.approx(713.4, abs=0.1)
