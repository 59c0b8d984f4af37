"""The replayed steps against the unprofiled steps a prediction stands on."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from golfprof.predict import anchor
from golfprof.predict.predict import predict
from tests.predict.synth_run import write_run


def _ms(values: dict[int, float]) -> pd.Series:
    return pd.Series(values, name="ms").rename_axis("step")


def test_a_slow_profiled_window_is_named_with_both_medians():
    """The H200 run that mispredicted: profiled steps 4-6 at 81.8, 78.8, 80.9 ms, step 7 (the only timed one) at
    73.5: off by +10%, and one unprofiled step is a shaky anchor; both said in one line."""
    a = anchor.check(_ms({3: 77.6, 4: 81.78, 5: 78.84, 6: 80.92, 7: 73.46}), [7], [4, 5, 6])
    assert a["replayed_median_ms"] == pytest.approx(80.92) and a["anchor_median_ms"] == pytest.approx(73.46)
    assert a["off_pct"] == pytest.approx(100 * (80.92 / 73.46 - 1))
    assert "80.9 ms/step" in a["warning"] and "73.5" in a["warning"] and "(+10.2%)" in a["warning"]
    assert "stands on 1 unprofiled step(s)" in a["warning"]


def test_a_typical_window_over_enough_steps_says_nothing():
    ms = _ms({s: 73.0 + 0.1 * (s % 3) for s in range(3, 14)})
    a = anchor.check(ms, [3, 7, 8, 9, 10, 11, 12, 13], [4, 5, 6])
    assert abs(a["off_pct"]) < anchor.DEFECT_PCT and a["anchor_steps"] == 8 and "warning" not in a


def test_just_past_the_limit_warns_and_no_steps_gives_none():
    ms = _ms({4: 102.1, 5: 102.1, 7: 100.0, 8: 100.0, 9: 100.0})
    assert "+2.1%" in anchor.check(ms, [7, 8, 9], [4, 5])["warning"]
    assert "warning" not in anchor.check(ms.replace(102.1, 101.9), [7, 8, 9], [4, 5])
    assert anchor.check(ms, [], [4, 5]) is None and anchor.check(ms, [7], [1]) is None


def test_the_prediction_document_carries_the_check(tmp_path: Path):
    run, _ = write_run(tmp_path / "run", [("nvjet_gemm", "aten::mm", 5, 0, 100)], [], end=160,
                       step_ms=[500.0, 0.16, 0.16, 0.2])
    a = predict(run, "h200")["prediction"]["anchor"]
    assert (a["replayed_steps"], a["anchor_steps"]) == (1, 2) and a["off_pct"] == pytest.approx(25.0)
    assert "(+25.0%)" in a["warning"]
