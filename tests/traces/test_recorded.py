"""traces/recorded.py: collectives as issued, per profiled step (what a CPU trace cannot show)."""

from __future__ import annotations

import pandas as pd

from golfprof.profiler.collectives import COLUMNS
from golfprof.traces.recorded import per_step, read


def _frame(rows: list[tuple]) -> pd.DataFrame:
    base = dict.fromkeys(COLUMNS)
    return pd.DataFrame([base | {"op": op, "dtype": dt, "bytes": b, "phase": ph, "step": s, "data_dependent": dd}
                         for op, dt, b, ph, s, dd in rows], columns=COLUMNS)


def test_per_step_counts_and_sums_over_the_steps_asked_for_only():
    f = _frame([("all_reduce", "f32", 4, None, None, False),  # before any step: not a step's
                ("all_reduce", "f32", 100, "golfprof/step/backward", 1, False),
                ("all_reduce", "f32", 100, "golfprof/step/backward", 2, False),
                ("all_reduce", "f32", 4, "golfprof/step/data", 2, False),
                ("all_to_all", "bf16", 30, "golfprof/step/forward", 2, True),
                ("all_reduce", "f32", 100, "golfprof/step/backward", 3, False)])
    out = per_step(f, [1, 2])
    rows = {(r.op, r.phase): r for r in out.itertuples()}
    back = rows[("all_reduce", "golfprof/step/backward")]
    assert (back.count_per_step, back.bytes_per_step, back.median_bytes) == (1.0, 100.0, 100.0)
    assert rows[("all_reduce", "golfprof/step/data")].count_per_step == 0.5
    assert rows[("all_to_all", "golfprof/step/forward")].data_dependent
    assert list(out.op)[0] == "all_reduce" and len(out) == 3  # largest bytes per step first; step 3 left out


def test_no_steps_or_no_collectives_give_an_empty_table(tmp_path):
    assert per_step(_frame([("all_reduce", "f32", 4, None, 0, False)]), []).empty
    assert per_step(_frame([]), [0, 1]).empty
    assert read(tmp_path) == {} and read(tmp_path / "missing") == {}
