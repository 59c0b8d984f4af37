"""A real simulated run: one H200 playing rank 7 of 8 under ddp_banks, record-faithful, --record-shapes, 12 steps
(tests/data/gpu_traces/h200_w8_ddp_banks: its config.json holds the command, env.json the device and torch;
simulated/predicted.json is what the device computed, a row of benchmarks/results/prediction_vs_records.json).

Replayed here on the CPU, it must predict what the device predicted, and taking the profiler's CPU time out
(predict/deflate.py) must leave the H100's longer kernels less idle time to hide in.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from golfprof.predict import deflate
from golfprof.predict.predict import predict

RUN = Path(__file__).resolve().parents[1] / "data" / "gpu_traces" / "h200_w8_ddp_banks"


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(RUN, dest)
    return dest


def test_it_predicts_what_the_device_predicted(run: Path) -> None:
    device = json.loads((RUN / "simulated" / "predicted.json").read_text())["prediction"]
    p = predict(run, target_gpu="h100")["prediction"]
    assert p["ms_per_step"] == pytest.approx(device["ms_per_step"], rel=1e-9)
    assert p["target"]["ms_per_step"] == pytest.approx(device["target"]["ms_per_step"], rel=1e-9)
    assert p["target"]["ms_per_step"] == pytest.approx(92.14, abs=0.005)  # the committed row
    lines = {b["line"]: b["ms"] for b in p["target"]["breakdown"]}
    assert sum(lines.values()) == pytest.approx(p["target"]["ms_per_step"])  # DDP's lines sum to the step
    assert lines["replicated optimizer"] > 1 and lines["ddp hooks"] > 0
    assert set(p["deflation"]["shrunk"]) >= {"golfprof/step/optimizer", "golfprof/step/grad_clip"}
    assert abs(p["anchor"]["deflated_off_pct"]) < abs(p["anchor"]["off_pct"]) < 2


def test_without_deflation_the_profilers_gaps_absorb_part_of_the_h100_growth(run: Path, monkeypatch) -> None:
    with_it = predict(run, target_gpu="h100")["prediction"]
    monkeypatch.setattr(deflate, "deflate", lambda role, ranges, fits: (role, ranges))
    without = predict(run, target_gpu="h100")["prediction"]
    grow = lambda p: p["target"]["ms_per_step"] - p["ms_per_step"]  # noqa: E731
    assert grow(with_it) - grow(without) > 0.3  # 10.69 against 10.28 ms on this run
