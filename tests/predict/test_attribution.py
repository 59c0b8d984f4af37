"""Where a target GPU's extra time goes, per phase: exact answers on hand-made timelines, and the prediction's rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from golfprof.predict import attribution, replay
from golfprof.predict.predict import predict
from golfprof.predict.rescale import target_role
from tests.predict.synth_run import write_run

FWD, BWD = "golfprof/step/forward", "golfprof/step/backward"


def _rows(launch, start, dur, stream, ranges, end, ratio):
    role = replay.RoleStep(launch=np.array(launch, float), start=np.array(start, float), dur=np.array(dur, float),
                           stream=np.array(stream), issue=np.zeros(0), wait=np.zeros(0), end=end)
    tgt = target_role(role, np.full(len(launch), ratio))
    src_tl = replay.replay_step([role], np.zeros(0)).roles[0]
    tgt_tl = replay.replay_step([tgt], np.zeros(0)).roles[0]
    f = attribution.by_phase(role, src_tl, tgt, tgt_tl, ranges)
    return {r.phase: r for r in f.itertuples()}


def test_growth_before_an_idle_gap_is_soaked_up_and_the_next_phase_adds_its_own():
    """Forward's kernel (100 µs, queued) grows 40 µs on the target, inside the 49 µs the GPU then waited for
    backward's launch; backward's (50 µs) grows 20 and ends the step 20 µs later: forward hands on 40, backward
    inherits 0 and adds 20, the step's change is 20."""
    r = _rows([1, 150], [1, 150], [100, 50], [0, 0], [(FWD, 0, 20), (BWD, 140, 160)], end=210, ratio=1.4)
    f, b, after = r[FWD], r[BWD], r[attribution.AFTER]
    assert (f.kernels, f.source_ms, f.target_ms) == (1, pytest.approx(0.1), pytest.approx(0.14))
    assert (f.starts_later_ms, f.ends_later_ms, f.own_ms, f.absorbed_ms) == pytest.approx((0, 0.04, 0.04, 0))
    assert (b.starts_later_ms, b.ends_later_ms, b.own_ms, b.grown_ms) == pytest.approx((0, 0.02, 0.02, 0.02))
    assert after.kernels == 0
    assert (after.starts_later_ms, after.ends_later_ms, after.own_ms) == pytest.approx((0.02, 0.02, 0))


def test_growth_beside_a_longer_stream_is_absorbed_inside_the_phase():
    """Two kernels side by side on two streams (100 and 50 µs), both x1.4: the phase ends 40 µs later, its
    kernels grew 60, so 20 were absorbed beside the longer one."""
    r = _rows([1, 2], [1, 2], [100, 50], [0, 1], [(FWD, 0, 20)], end=110, ratio=1.4)
    f = r[FWD]
    assert (f.grown_ms, f.own_ms, f.absorbed_ms, f.ends_later_ms) == pytest.approx((0.06, 0.04, 0.02, 0.04))
    assert r[attribution.AFTER].ends_later_ms == pytest.approx(0.04)


def test_each_micro_batch_instance_adds_to_its_phase():
    """Forward twice (two micro-batches), each kernel 100 µs queued back to back, x1.5: each instance adds 50,
    the phase's own 100, its end delay the second instance's."""
    ranges = [(FWD, 0, 5), (FWD, 10, 15)]
    r = _rows([1, 11], [1, 101], [100, 100], [0, 0], ranges, end=201, ratio=1.5)
    f = r[FWD]
    assert f.kernels == 2 and (f.own_ms, f.ends_later_ms, f.starts_later_ms) == pytest.approx((0.1, 0.1, 0))


def test_a_target_prediction_says_where_its_difference_goes(tmp_path: Path):
    """The synthetic GEMM + add run on an H100: backward's kernels grow by the add's share; the rows' last end
    delay is the whole step's change, target minus source."""
    kernels = [("nvjet_gemm", "aten::mm", 5, 0, 100), ("vectorized_elementwise_kernel", "aten::add", 10, 100, 50)]
    run, _ = write_run(tmp_path / "run", kernels, [], end=160)
    p = predict(run, "h200", target_gpu="h100")["prediction"]
    rows = {r["phase"]: r for r in p["target"]["by_phase"]}
    assert list(rows) == [BWD, attribution.AFTER]
    assert rows[BWD]["kernels"] == 2 and rows[BWD]["source_ms"] == pytest.approx(0.15)
    change = p["target"]["ms_per_step"] - p["ms_per_step"]
    assert change > 0 and rows[BWD]["grown_ms"] == pytest.approx(change)
    assert rows[BWD]["own_ms"] == pytest.approx(change) and rows[attribution.AFTER]["ends_later_ms"] == \
        pytest.approx(change)
