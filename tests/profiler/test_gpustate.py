"""GPU state per step: nothing (and no error) on the CPU or without NVML; faked NVML readings that report
throttling become columns, a summary, and notes."""

from __future__ import annotations

import sys
import warnings

import pandas as pd
import pytest
import torch

from golfprof.errors import GolfprofWarning
from golfprof.profiler import gpustate
from golfprof.profiler.gpustate import GpuSampler, merge_ranks, reason_names, summarize

pynvml = pytest.importorskip("pynvml")  # nvidia-ml-py: a dependency of golfprof
CUDA0 = torch.device("cuda", 0)


def test_nothing_is_read_on_the_cpu() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = GpuSampler(torch.device("cpu"))
        assert not sampler.active and sampler.sample() == {}
    assert summarize(pd.DataFrame({"step": [0, 1], "ms": [1.0, 2.0]})) is None
    assert merge_ranks([None, None]) is None


def test_without_the_package_nothing_is_read_and_nothing_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert GpuSampler(CUDA0).sample() == {}


def test_nvml_that_cannot_start_is_a_warning_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library() -> None:
        raise pynvml.NVMLError_LibraryNotFound()  # what this CPU machine's NVML says

    monkeypatch.setattr(pynvml, "nvmlInit", no_library)
    with pytest.warns(GolfprofWarning, match="NVML unavailable"):
        sampler = GpuSampler(CUDA0)
    assert sampler.sample() == {}


class FakeGpu:
    """NVML's answers for one GPU: 1980/3201 MHz, 650 W, 61 C; power-capped at the given steps."""

    def __init__(self, capped_steps: set[int], reasons: int = 0x4) -> None:
        self.step, self.capped, self.reasons = 0, capped_steps, reasons

    def install(self, monkeypatch: pytest.MonkeyPatch, old_name: bool = False) -> None:
        monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByUUID", lambda uuid: "handle")
        monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda i: "handle")
        monkeypatch.setattr(pynvml, "nvmlDeviceGetClockInfo",
                            lambda h, kind: {pynvml.NVML_CLOCK_SM: self.sm(), pynvml.NVML_CLOCK_MEM: 3201}[kind])
        monkeypatch.setattr(pynvml, "nvmlDeviceGetPowerUsage", lambda h: 650_000)  # milliwatts
        monkeypatch.setattr(pynvml, "nvmlDeviceGetTemperature", lambda h, sensor: 61)
        if old_name:  # nvidia-ml-py before 12.5 knows only the ThrottleReasons name
            monkeypatch.delattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons")
            monkeypatch.setattr(pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", self.reasons_now)
        else:
            monkeypatch.setattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", self.reasons_now)

    def sm(self) -> int:
        return 1500 if self.step in self.capped else 1980

    def reasons_now(self, handle: str) -> int:
        return self.reasons if self.step in self.capped else 0x1 * (self.step == 0)  # idle before the first step


def _sample_steps(monkeypatch: pytest.MonkeyPatch, gpu: FakeGpu, steps: int, old_name: bool = False) -> pd.DataFrame:
    gpu.install(monkeypatch, old_name)
    sampler = GpuSampler(CUDA0)
    assert sampler.active
    rows = []
    for step in range(steps):
        gpu.step = step
        rows.append({"step": step, "ms": 100.0, **sampler.sample()})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("old_name", [False, True])
def test_faked_power_capping_is_flagged_per_step_and_summarized(monkeypatch: pytest.MonkeyPatch,
                                                                old_name: bool) -> None:
    steps = _sample_steps(monkeypatch, FakeGpu({2, 5, 6}), 8, old_name)
    assert set(gpustate.COLUMNS) <= set(steps.columns)
    assert steps[gpustate.THROTTLED].tolist() == [False, False, True, False, False, True, True, False]
    assert steps.loc[0, gpustate.REASONS] == 0x1 and not steps.loc[0, gpustate.THROTTLED]  # idle is no throttle
    assert steps.loc[2, gpustate.POWER] == 650.0 and steps.loc[2, gpustate.SM_CLOCK] == 1500.0
    s = summarize(steps, timed={3, 4, 5, 6, 7})
    assert s["throttled_steps"] == 3 and s["throttled_timed_steps"] == 2 and s["throttled_step_numbers"] == [2, 5, 6]
    assert s["throttle_reasons"] == ["sw_power_cap"] and s["median_sm_clock_mhz"] == 1980.0
    assert s["median_mem_clock_mhz"] == 3201.0 and s["max_temp_c"] == 61.0 and s["sampled_steps"] == 8


def test_ranks_are_merged_and_reasons_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert reason_names(0x4 | 0x40 | 0x1) == ["sw_power_cap", "hw_thermal"]
    calm = summarize(_sample_steps(monkeypatch, FakeGpu(set()), 4))
    hot = summarize(_sample_steps(monkeypatch, FakeGpu({1, 3}, reasons=0x20 | 0x40), 4))
    assert calm["throttled_steps"] == 0 and calm["throttle_reasons"] == []
    run = merge_ranks([calm, hot])
    assert run["throttled_steps"] == 2 and run["throttled_ranks"] == [1]
    assert run["throttle_reasons"] == ["sw_thermal", "hw_thermal"]


def test_a_reading_that_fails_stops_the_sampling_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeGpu(set()).install(monkeypatch)
    sampler = GpuSampler(CUDA0)

    def lost(h: str) -> int:
        raise pynvml.NVMLError_GpuIsLost()

    monkeypatch.setattr(pynvml, "nvmlDeviceGetPowerUsage", lost)
    with pytest.warns(GolfprofWarning, match="NVML reading failed"):
        assert sampler.sample() == {}
    assert not sampler.active and sampler.sample() == {}
