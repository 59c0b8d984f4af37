"""Intervals beside every prediction: from the played rank's step spread and the comm table's ±."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from golfprof.errors import ConfigError
from golfprof.predict import costmodel, intervals
from golfprof.predict.predict import predict
from golfprof.profiler.rundir import RunDir
from tests.predict.synth_run import write_run


def test_spread_is_the_widest_rank_s_quantiles_around_its_median():
    lo, hi = intervals.spread([np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 10.0])])
    assert lo == pytest.approx(1.2 - 2.0) and hi == pytest.approx(8.4 - 2.0)
    assert intervals.spread([np.array([5.0])]) == (0.0, 0.0)  # one sample: no spread to speak of
    assert intervals.overlap([1, 2], [2, 3]) and not intervals.overlap([1, 2], [2.5, 3])


KERNELS = [("nvjet_gemm", None, 5, 0, 100), ("nvjet_gemm", None, 140, 200, 100)]
COLLS = [{"seq": 0, "op": "all_gather", "bytes": 1 << 20, "issue": 110, "wait": 130}]


def _interval(tmp_path: Path, name: str, steps: list[float], extra: dict | None = None) -> tuple[float, list[float]]:
    run, table = write_run(tmp_path / name, KERNELS, COLLS, end=310, step_ms=steps, table_extra=extra)
    p = predict(run, table)["prediction"]
    return p["ms_per_step"], p["interval_ms"]


def test_the_interval_holds_the_point_and_widens_with_the_step_spread(tmp_path: Path):
    # step 3 is the profiled one, replayed: the unprofiled steps 1 and 2 have one median in both runs
    point, narrow = _interval(tmp_path, "narrow", [9.0, 0.300, 0.302, 0.301])
    _, wide = _interval(tmp_path, "wide", [9.0, 0.270, 0.332, 0.301])
    assert narrow[0] <= point <= narrow[1] and wide[0] <= point <= wide[1]
    assert wide[0] < narrow[0] and wide[1] > narrow[1]
    # the steps the prediction stands on: the timed ones less the step it replayed (the profiled one)
    rd = RunDir(tmp_path / "wide")
    replayed = json.loads(rd.predicted.read_text())["prediction"]["steps"]
    timed = np.array([9.0, 0.270, 0.332, 0.301])[[s for s in rd.timed_steps() if s not in replayed]]
    lo, hi = (float(np.quantile(timed, q)) - float(np.median(timed)) for q in intervals.QUANTILES)
    assert wide == pytest.approx([point + lo, point + hi])  # no table ±: the step spread alone


def test_the_table_s_uncertainty_widens_the_interval_by_the_exposed_collective(tmp_path: Path):
    steps = [9.0, 0.300, 0.301, 0.302]
    point, plain = _interval(tmp_path, "plain", steps)
    _, with_u = _interval(tmp_path, "u", steps, {"uncertainty": {"value": 0.2, "source": "a test's own figure"}})
    # the all-gather [110, 260) is waited on by C: its ±20% (30 µs) moves the step's end by as much
    assert with_u[0] == pytest.approx(plain[0] - 0.030) and with_u[1] == pytest.approx(plain[1] + 0.030)


@pytest.mark.parametrize("value,message", [(-0.1, "must be >= 0"), ("x", "not a finite"), (None, "not a finite")])
def test_a_bad_uncertainty_is_refused(value, message, tmp_path: Path):
    (tmp_path / "t.json").write_text(json.dumps({"format": "golfprof-comm-table/1",
                                                 "uncertainty": {"value": value, "source": "s"}}))
    with pytest.raises(ConfigError, match=message):
        costmodel.load(tmp_path / "t.json")


def test_bundled_tables_state_their_uncertainty():
    assert costmodel.load("h200").uncertainty == pytest.approx(1 - 370 / 475, abs=1e-3)
    assert costmodel.load("h100").uncertainty == pytest.approx(1 - 370 / 479.72, abs=1e-3)
