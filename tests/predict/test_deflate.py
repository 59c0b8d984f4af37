"""predict/deflate.py: the profiler's CPU time out of a profiled step, exact answers on hand-made timelines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from golfprof.predict import deflate, replay
from golfprof.predict.rescale import target_role

STEP, OPT, FWD = "golfprof/step", "golfprof/step/optimizer", "golfprof/step/forward"


def _role(launch, start, dur, end, issue=(), wait=(), stream=None) -> replay.RoleStep:
    n = len(launch)
    return replay.RoleStep(launch=np.array(launch, float), start=np.array(start, float), dur=np.array(dur, float),
                           stream=np.array(stream if stream is not None else [7] * n), issue=np.array(issue, float),
                           wait=np.array(wait, float), end=float(end))


def test_the_warp_shrinks_each_phase_by_its_factor_and_keeps_the_time_between():
    ranges = [(STEP, 0, 1000), (FWD, 100, 500), (OPT + "/muon", 650, 700), (OPT, 600, 900)]
    w = deflate.warp(ranges, {FWD: 0.5, OPT: 0.2})
    t = np.array([50, 100, 300, 500, 550, 600, 750, 900, 1000, np.inf])
    assert w(t).tolist() == pytest.approx([50, 100, 200, 300, 350, 400, 430, 460, 560, np.inf])


def test_fits_compare_the_traced_phase_with_its_timer_and_never_stretch():
    ranges = [(STEP, 0, 1000), (FWD, 0, 200), (FWD, 300, 500), (OPT, 600, 900), (OPT + "/muon", 600, 700)]
    fit = deflate.fits(ranges, {FWD: 0.1, OPT: 0.5, OPT + "/muon": 0.01})
    assert set(fit) == {FWD, OPT}  # nested phases move with their parent's warp
    assert fit[FWD] == deflate.PhaseFit(0.4, 0.1, 0.25)  # two micro-batch ranges, 400 µs together
    assert fit[OPT].factor == 1.0  # its timer says longer than the trace: kept as traced


def test_timer_medians_sum_a_phase_within_a_step_then_take_the_median_over_steps():
    phases = pd.DataFrame({"step": [1, 1, 1, 2, 2, 3, 3, 9], "phase": [FWD, FWD, OPT, FWD, OPT, FWD, OPT, FWD],
                           "ms": [1.0, 2.0, 0.5, 4.0, 0.7, 3.5, 0.9, 100.0]})
    assert deflate.timer_medians(phases, [1, 2, 3]) == {FWD: 3.5, OPT: 0.7}


def test_a_launch_bound_phase_launches_as_fast_as_its_timers_say():
    # five kernels launched every 200 µs in an optimizer its timers give 180 µs (traced 900): factor 0.2
    role = _role([0, 200, 400, 600, 800], [5, 205, 405, 605, 805], [20, 20, 20, 20, 200], end=1010)
    ranges = [(STEP, 0, 1010), (OPT, 0, 900)]
    out, moved = deflate.deflate(role, ranges, deflate.fits(ranges, {OPT: 0.18}))
    assert out.launch.tolist() == pytest.approx([0, 40, 80, 120, 160])
    assert out.start.tolist() == pytest.approx([5, 45, 85, 125, 165])  # each 5 µs after its warped launch
    assert out.end == pytest.approx(370)  # the last kernel's end (365) and the step's sync tail (5 µs)
    assert [n for n, _, _ in moved] == [STEP, OPT]
    assert [x for _, a, b in moved for x in (a, b)] == pytest.approx([0, 290, 0, 180])


def test_a_kernel_queued_behind_its_stream_stays_behind_it():
    role = _role([0, 100], [5, 505], [500, 10], end=520)  # the second waits for the first, not for its launch
    ranges = [(STEP, 0, 520), (FWD, 0, 400)]
    out, _ = deflate.deflate(role, ranges, deflate.fits(ranges, {FWD: 0.2}))
    assert out.start.tolist() == pytest.approx([5, 505]) and out.end == pytest.approx(520)


def test_collective_calls_and_waits_move_with_the_warp():
    role = _role([0, 300], [5, 305], [10, 10], end=400, issue=[200], wait=[250])
    ranges = [(STEP, 0, 400), (OPT, 0, 400)]
    out, _ = deflate.deflate(role, ranges, deflate.fits(ranges, {OPT: 0.08}))  # 80 µs of 400: factor 0.2
    assert out.issue.tolist() == pytest.approx([40]) and out.wait.tolist() == pytest.approx([50])
    assert out.launch.tolist() == pytest.approx([0, 60])


def test_a_step_its_timers_agree_with_is_left_as_traced():
    role = _role([0, 200], [5, 205], [20, 20], end=300)
    ranges = [(STEP, 0, 300), (OPT, 0, 250)]
    out, moved = deflate.deflate(role, ranges, deflate.fits(ranges, {OPT: 0.30}))
    assert out is role and moved is ranges


def test_a_slower_target_gpu_pays_for_kernels_the_inflated_gaps_had_absorbed():
    # traced: five 20 µs kernels launched 200 µs apart (the profiler's CPU time); unprofiled, the optimizer takes
    # 100 µs. On a GPU half as fast each kernel takes 40: the traced gaps absorb all but the last one's 20 µs
    role = _role([0, 200, 400, 600, 800], [5, 205, 405, 605, 805], [20] * 5, end=830)
    ranges = [(STEP, 0, 830), (OPT, 0, 1000)]
    out, _ = deflate.deflate(role, ranges, deflate.fits(ranges, {OPT: 0.1}))

    def growth(r: replay.RoleStep) -> float:  # every kernel twice as long, as --target-gpu rescales a role
        return replay.replay_step([target_role(r, np.full(len(r.dur), 2.0))], np.zeros(0)).roles[0].delta

    assert growth(role) == pytest.approx(20)
    assert out.start.tolist() == pytest.approx([5, 25, 45, 65, 85])  # back to back once the CPU keeps up
    assert growth(out) == pytest.approx(100)  # every kernel's extra 20 µs lands on the critical path


def test_a_prediction_takes_the_profiler_s_time_out_and_says_so(tmp_path, capsys):
    from golfprof.predict.predict import predict
    from tests.predict.synth_run import write_run

    # backward (traced 2-102 µs) launches its two kernels late; its timers give it 20 µs in the unprofiled steps
    kernels = [("nvjet_gemm", None, 5, 10, 20), ("nvjet_gemm", None, 90, 95, 20)]
    run, table = write_run(tmp_path / "run", kernels, [], end=310, step_ms=[9.0, 0.22, 0.23, 0.31],
                           phase_ms={"golfprof/step/backward": [5.0, 0.02, 0.02, 0.1]})
    p = predict(run, table)["prediction"]
    d = p["deflation"]
    assert d["shrunk"] == ["golfprof/step/backward"]
    assert d["phases"]["golfprof/step/backward"] == pytest.approx({"trace_ms": 0.1, "timer_ms": 0.02, "factor": 0.2})
    assert d["deflated_ms"] < d["traced_ms"] == pytest.approx(0.31)
    a = p["anchor"]
    assert a["deflated_phases"] == ["golfprof/step/backward"] and a["deflated_median_ms"] == d["deflated_ms"]
    assert "predict/deflate.py" in (a.get("warning") or a.get("note"))
