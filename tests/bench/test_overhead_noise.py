"""`golfprof bench overhead` names its interval and says when the machine makes the figure meaningless (issue 17)."""

from __future__ import annotations

import pytest

from golfprof.bench.overhead import median_interval, noise


def _result(unmarked: list[float], diffs: list[float]) -> dict:
    base = sorted(unmarked)[len(unmarked) // 2]
    lo, hi, conf = median_interval(diffs)
    return {"unmarked_ms": unmarked, "unmarked_ms_median": base, "interval_confidence": conf,
            "overhead_pct_interval": [100 * lo / base, 100 * hi / base]}


def test_median_interval_is_the_binomial_order_statistics():
    lo, hi, conf = median_interval([float(v) for v in range(10)])
    assert (lo, hi) == (1.0, 8.0) and conf == pytest.approx(0.9785, abs=1e-4)
    assert median_interval([3.0, 1.0, 2.0])[:2] == (1.0, 3.0)  # too few for 95%: the range, at its coverage


def test_a_quiet_machine_is_trusted_and_a_loaded_one_is_named():
    steady = [100.0 + 0.1 * (i % 3) for i in range(20)]
    small = [0.5 + 0.01 * (i % 5) for i in range(20)]
    assert noise(_result(steady, small), load=0.5, cpus=4) == []
    why = noise(_result(steady, small), load=9.0, cpus=2)
    assert len(why) == 1 and why[0].startswith("load average 9.0 on 2 CPUs")
    bursty = [100.0, 180.0, 95.0, 300.0] * 5
    wild = [-80.0, 150.0, 3.0, -40.0, 90.0] * 4
    why = noise(_result(bursty, wild), load=None, cpus=None)
    assert any("spread" in w for w in why) and any("interval" in w for w in why)
