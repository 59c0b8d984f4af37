"""Is the profiled window typical? The profiled steps against the run's step timers (steps/rank*.parquet)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from golfprof.profiler.window import Window
from golfprof.traces.typical import run_window_check, window_line, window_vs_timers
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


# --------------------------------------------------------------------------------------------
# The exit summary's window check: the traced steps against the timed ones, and the phase that made the difference


def _tables(extra: dict[str, float], window_steps=(5, 6, 7), steps: int = 14) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Step timers and a phase table: data 2, forward 10, backward 20, optimizer 5 (muon 4 of it, the qo bank's
    orthogonalization 3 of that) ms a step, plus ``extra`` ms per phase in the window's steps; +1 ms unmarked."""
    base = {"golfprof/step/data": 2.0, "golfprof/step/forward": 10.0, "golfprof/step/backward": 20.0,
            "golfprof/step/optimizer": 5.0, "golfprof/step/optimizer/muon": 4.0,
            "golfprof/step/optimizer/muon/qo_bank/orthogonalize": 3.0, "golfprof/step": 37.0}
    rows, timers = [], []
    for s in range(steps):
        add = extra if s in window_steps else {}
        ms = {k: v + add.get(k, 0.0) for k, v in base.items()}
        for k, v in ms.items():
            if k == "golfprof/step/forward":  # two micro-steps: two rows per step
                rows += [{"step": s, "rank": 0, "phase": k, "ms": v / 2}] * 2
            else:
                rows.append({"step": s, "rank": 0, "phase": k, "ms": v})
        top = sum(v for k, v in ms.items() if k.count("/") == 2)
        timers.append({"step": s, "rank": 0, "ms": (9e3 if s == 0 else top + 1.0 + add.get("outside", 0.0))})
    return pd.DataFrame(timers), pd.DataFrame(rows)


WINDOW = Window(wait=4, warmup=1, active=3)  # traced 5-7; step 4 is the profiler's warm-up


def test_a_slow_data_phase_in_the_window_is_named() -> None:
    """As on one H200: the window's data phase grew by pinning every batch under CUPTI."""
    steps, phases = _tables({"golfprof/step/data": 12.0})
    w = run_window_check(steps, phases, warmup=1, window=WINDOW)
    assert w["verdict"] == "slow" and w["others"] == 9  # steps 1-3 and 8-13: neither 0 (warm-up) nor 4
    assert w["window_vs_rest_pct"] == pytest.approx(100 * 12 / 38)
    assert w["phase"] == {"name": "golfprof/step/data", "profiled_ms": 14.0, "others_ms": 2.0, "excess_ms": 12.0}
    assert window_line(w) == ("profiled window slow: 50.0 ms/step against 38.0 in the run's 9 other timed steps "
                              "(+31.6%); data made the difference: 14.0 ms/step in the window against 2.0 (+12.0)")
    json.dumps(w)  # goes into summary.json as it is


def test_the_deepest_phase_holding_most_of_the_growth_is_named() -> None:
    grown = {"golfprof/step/optimizer": 3.0, "golfprof/step/optimizer/muon": 3.0,
             "golfprof/step/optimizer/muon/qo_bank/orthogonalize": 2.5}
    w = run_window_check(*_tables(grown), warmup=1, window=WINDOW)
    assert w["phase"]["name"] == "golfprof/step/optimizer/muon/qo_bank/orthogonalize"
    assert "optimizer/muon/qo_bank/orthogonalize made the difference" in window_line(w)
    w = run_window_check(*_tables({"outside": 1.5}), warmup=1, window=WINDOW)  # +3.9%: the step's unmarked time
    assert w["verdict"] == "typical" and w["phase"]["name"] == "outside phases"
    assert window_line(w).endswith("(+3.9%); outside phases made the difference: 2.5 ms/step in the window "
                                   "against 1.0 (+1.5)")


def test_a_typical_window_gets_one_plain_line() -> None:
    w = run_window_check(*_tables({"golfprof/step/backward": 0.2}), warmup=1, window=WINDOW)
    assert w["verdict"] == "typical" and abs(w["window_vs_rest_pct"]) < 2
    assert window_line(w) == ("profiled window typical: 38.2 ms/step against 38.0 in the run's 9 other timed steps "
                              "(+0.5%)")
    assert run_window_check(*_tables({}), warmup=1, window=None) is None  # not profiled: nothing to check
    steps, phases = _tables({}, steps=8)  # timed 1-7: the window's 4-7 leave 3 others, the least that says
    assert run_window_check(steps, phases, warmup=1, window=WINDOW)["others"] == 3
    assert run_window_check(steps, phases, warmup=2, window=WINDOW) is None
    assert run_window_check(steps, phases.iloc[0:0], warmup=1, window=WINDOW)["phase"] is None  # --no-timers
