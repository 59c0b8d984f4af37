"""The predicted comparison: intervals beside the points, "not distinguishable" where they overlap, target rows."""

from __future__ import annotations

from golfprof.predict.compare import comparison


def _p(ms: float, iv: list[float], target: dict | None = None) -> dict:
    return {"ms_per_step": ms, "interval_ms": iv, "optimizer_ms": 1.0, "comm_ms": 1.0, "exposed_comm_ms": 0.5,
            "comm_comp_overlap_pct": 50.0} | ({"target": target} if target else {})


def test_overlapping_intervals_are_not_distinguishable_and_targets_get_rows_of_their_own():
    results = {
        "explicit_banks": {"ms_per_step": 80.0, "prediction": _p(80.0, [79.0, 81.0],
                                                                  {"gpu": "h100", "ms_per_step": 83.0,
                                                                   "interval_ms": [82.0, 84.0]})},
        "ddp_banks": {"ms_per_step": 80.5, "prediction": _p(80.5, [80.5, 82.0],
                                                             {"gpu": "h100", "ms_per_step": 86.0,
                                                              "interval_ms": [85.0, 87.0]})},
    }
    f = comparison(results, "explicit_banks").set_index("variant")
    assert f.loc["explicit_banks", "verdict"] == "(baseline)"
    assert f.loc["ddp_banks", "verdict"] == "not distinguishable"
    assert f.loc["ddp_banks on h100", "verdict"] == "slower" and f.loc["ddp_banks on h100", "Δ vs baseline ms"] == 3.0
    assert f.loc["explicit_banks on h100", "verdict"] == "(baseline)"
    assert f.loc["ddp_banks", "interval ms"] == "[80.50, 82.00]"
