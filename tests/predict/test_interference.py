"""The slowdown of compute under a modelled collective: the channel model's figures, the probe's override, and
the exact answer on a synthetic overlap (only the overlapped part of a kernel is slowed, each class by its own)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from golfprof.predict import costmodel, devices, interference, replay
from golfprof.predict.predict import predict
from tests.predict.synth_run import write_run

H200 = devices.bundled()["h200"]


def test_the_channel_model_from_the_table_s_channels_and_bus_bandwidth():
    model = costmodel.load("h200")
    i = interference.channel_model(model, H200)
    assert i.basis == "channels"
    assert i.compute == pytest.approx(16 / (132 - 16))  # 16 channels hold 16 of 132 SMs
    h = 475e9 * 2 / 4.8e12  # the all-reduce bus bandwidth read and written once through HBM
    assert i.memory == pytest.approx(h / (1 - h))


def test_a_probe_s_measurement_replaces_the_compute_bound_figure(tmp_path: Path):
    d = json.loads((Path(costmodel.__file__).parent / "comm_tables" / "h200_nvlink.json").read_text())
    d["interference_probe"] = {"value": 0.07, "source": "a test's own figure"}
    (tmp_path / "t.json").write_text(json.dumps(d))
    i = interference.channel_model(costmodel.load(tmp_path / "t.json"), H200)
    assert (i.compute, i.basis) == (0.07, "probe")
    d["interference_probe"] = {"value": -0.1, "source": "x"}
    (tmp_path / "t.json").write_text(json.dumps(d))
    with pytest.raises(Exception, match="must be >= 0"):
        costmodel.load(tmp_path / "t.json")


def test_per_item_factors_slow_only_the_overlapped_part_of_each_kernel():
    """A [0, 10) is launched before the all-gather's call at 10, which then runs [10, 30). B (memory, factor 1,
    stream 0) from 12: 9 µs of its 10 by 30 at half speed, the last 1 free: ends 31. C (compute, factor 0.5,
    stream 1) from 15: 10 of its 12 µs by 30 at 2/3 speed, then 2 free: ends 32. D at 40, after it: unchanged."""
    role = replay.RoleStep(launch=np.array([0.0, 12.0, 15.0, 40.0]), start=np.array([0.0, 12.0, 15.0, 40.0]),
                           dur=np.array([10.0, 10.0, 12.0, 5.0]), stream=np.array([0, 0, 1, 0]),
                           issue=np.array([10.0]), wait=np.array([np.inf]), end=45.0,
                           slow=np.array([0.5, 1.0, 0.5, 0.5]))
    rep = replay.replay_step([role], np.array([20.0]))
    assert (rep.comm_start[0], rep.comm_end[0]) == (10.0, 30.0)
    np.testing.assert_allclose(rep.roles[0].end, [10.0, 31.0, 32.0, 45.0])


def test_a_target_prediction_slows_the_overlapped_gemm_by_the_channel_figure(tmp_path: Path):
    """K1 [5, 15) before an all-gather issued at 20, measured at 50 µs: [20, 70). The GEMM K2 from 30 runs 40 µs
    under it at 1/(1 + f), f = 16/116: it ends 40·f/(1+f) later, and the add K3 queued behind it with it; the step
    (measured 200, its last kernel ending at 150) ends that much later. The table has no literature factor, so
    the plain prediction moves nothing."""
    kernels = [("nvjet_gemm", "aten::mm", 5, 5, 10), ("nvjet_gemm", "aten::mm", 30, 30, 100),
               ("vectorized_elementwise_kernel", "aten::add", 40, 130, 20)]
    colls = [{"seq": 0, "op": "all_gather", "bytes": 1 << 20, "issue": 20, "wait": None}]
    run, table = write_run(tmp_path / "run", kernels, colls, end=200, measured_us=50.0)
    assert predict(run, table)["prediction"]["ms_per_step"] == pytest.approx(0.200)
    f = 16 / 116
    late = 40 * f / (1 + f)
    p = predict(run, table, target_gpu="h100")["prediction"]
    assert p["source_gpu"]["interference"] == {"compute_bound": pytest.approx(f), "memory_bound": 0.0,
                                               "basis": "channels"}
    assert p["ms_per_step"] == pytest.approx((200 + late) / 1e3)
    assert p["target"]["alternative"]["ms_per_step"] == pytest.approx((200 + late + 20 * (4.8 / 3.35 - 1)) / 1e3)
    m = 3.0 * 4096 * 4096 * 2 / (0.8458 * 4.8e12) * 1e6  # the add's bandwidth part of its 20 µs (all of them)
    assert p["target"]["ms_per_step"] == pytest.approx((200 + late + min(m, 20) * (4.8 / 3.35 - 1)) / 1e3)
