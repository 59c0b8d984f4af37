"""A profiled run's exit summary: the window check with the phase that made the difference, and GPU state per
step (here a faked sampler: the CPU has no NVML) in the steps table, summary.json and the printed notes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from golfprof.profiler import gpustate
from tests.cli import invoke


class CappedGpu:
    """What GpuSampler reads on a power-capped GPU, without NVML: capped at step 4 only."""

    def __init__(self, device: object) -> None:
        self.step = 0

    def sample(self) -> dict[str, object]:
        capped, self.step = self.step == 4, self.step + 1
        return {gpustate.SM_CLOCK: 1500.0 if capped else 1980.0, gpustate.MEM_CLOCK: 3201.0, gpustate.POWER: 700.0,
                gpustate.TEMPERATURE: 60.0, gpustate.REASONS: 0x4 if capped else 0, gpustate.THROTTLED: capped}


def test_a_profiled_run_prints_its_window_check_and_throttling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("golfprof.ablations.run.gpustate.GpuSampler", CappedGpu)
    result = invoke("train", "--preset", "tiny", "--steps", 10, "--device", "cpu", "--bf16", "none", "--quiet",
                    "--warmup-steps", 1, "--profile-steps", "3,1,2", "--runs-dir", tmp_path / "runs",
                    "--data-dir", tmp_path / "data")
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    w = summary["window_check"]
    assert w["others"] == 6 and w["phase"]["name"].startswith("golfprof/step")  # 1, 2, 6-9; 3 warms, 4-5 traced
    assert w == summary["ranks"][0]["window_check"]
    assert summary["gpu_state"]["throttled_steps"] == 1 and summary["gpu_state"]["throttle_reasons"] == ["sw_power_cap"]
    steps = pd.read_parquet(next((run_dir / "steps").glob("*.parquet")))
    assert steps[gpustate.THROTTLED].tolist() == [s == 4 for s in range(10)]
    lines = [line for line in result.output.splitlines() if line.startswith("note: ")]
    assert lines[0].startswith(f"note: profiled window {w['verdict']}: ")
    assert f"({w['window_vs_rest_pct']:+.1f}%)" in lines[0]
    assert lines[1].startswith("note: the GPU throttled in 1 step(s), 0 of them timed (sw_power_cap; median SM clock "
                               "1980 MHz)")


def test_an_unprofiled_cpu_run_has_neither(tmp_path: Path) -> None:
    result = invoke("train", "--preset", "tiny", "--steps", 4, "--device", "cpu", "--bf16", "none", "--quiet",
                    "--profile-steps", "off", "--runs-dir", tmp_path / "runs", "--data-dir", tmp_path / "data")
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["window_check"] is None and summary["gpu_state"] is None
    steps = pd.read_parquet(next((run_dir / "steps").glob("*.parquet")))
    assert not set(gpustate.COLUMNS) & set(steps.columns)
    assert "note: " not in result.output
