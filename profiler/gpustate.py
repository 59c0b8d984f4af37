"""GPU state per step through NVML (``nvidia-ml-py``, imported as ``pynvml``): SM and memory clocks, power,
temperature and the clock-event ("throttle") reasons, so that a slow step can be told apart from a slow GPU.

One reading per step, taken on the host after the step's timer stopped: NVML answers from the driver without
touching the CUDA stream, so nothing here synchronizes. Without a CUDA device, without the package, or where
NVML cannot start, a sampler reads nothing and the columns are absent (a warning only in the last case, where
a GPU run expected them). ``summarize`` is pure: medians and throttled-step counts over a steps table.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import pandas as pd

from golfprof.errors import GolfprofWarning

# The steps table's columns (steps/rank<N>.parquet), one per reading.
SM_CLOCK, MEM_CLOCK, POWER, TEMPERATURE = "gpu_sm_clock_mhz", "gpu_mem_clock_mhz", "gpu_power_w", "gpu_temp_c"
REASONS, THROTTLED = "gpu_clock_event_reasons", "gpu_throttled"
COLUMNS = (SM_CLOCK, MEM_CLOCK, POWER, TEMPERATURE, REASONS, THROTTLED)

# NVML's clock-event reason bits (nvml.h, stable since the ThrottleReasons names) that slow a busy GPU down.
# Not counted: GpuIdle (0x1), ApplicationsClocksSetting (0x2), DisplayClockSetting (0x100): settings or idleness.
THROTTLE_BITS: dict[str, int] = {
    "sw_power_cap": 0x4, "hw_slowdown": 0x8, "sync_boost": 0x10, "sw_thermal": 0x20,
    "hw_thermal": 0x40, "hw_power_brake": 0x80,
}
THROTTLE_MASK = sum(THROTTLE_BITS.values())


def reason_names(mask: int) -> list[str]:
    """The throttle reasons a bitmask holds, by THROTTLE_BITS' names."""
    return [name for name, bit in THROTTLE_BITS.items() if mask & bit]


def _nvml_index(device_index: int) -> int:
    """NVML numbers every GPU of the host; CUDA only the visible ones: map through CUDA_VISIBLE_DEVICES."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if device_index < len(visible) and visible[device_index].isdigit():
        return int(visible[device_index])
    return device_index


class GpuSampler:
    """One NVML reading of this rank's GPU per call; ``{}`` where there is nothing to read."""

    def __init__(self, device: Any) -> None:
        self._nvml: Any = None
        self._handle: Any = None
        if getattr(device, "type", str(device)) != "cuda":
            return
        try:
            import pynvml
        except ImportError:
            return
        try:
            pynvml.nvmlInit()
            self._handle = self._open(pynvml, device)
        except Exception as e:  # noqa: BLE001 - NVML's errors are many classes; none stops a run
            warnings.warn(f"NVML unavailable ({e}): no GPU clocks, power or throttle reasons in this run",
                          GolfprofWarning, stacklevel=2)
            return
        self._nvml = pynvml
        self._reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
            pynvml.nvmlDeviceGetCurrentClocksThrottleReasons  # the older name, before NVML 12.5

    @staticmethod
    def _open(pynvml: Any, device: Any) -> Any:
        """The NVML handle of this torch device: by UUID where torch reports one, else by visible index."""
        import torch

        index = device.index if device.index is not None else torch.cuda.current_device()
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{torch.cuda.get_device_properties(index).uuid}")
        except Exception:  # noqa: BLE001 - no uuid in this torch, a MIG slice, an old driver: by index
            return pynvml.nvmlDeviceGetHandleByIndex(_nvml_index(index))

    @property
    def active(self) -> bool:
        return self._nvml is not None

    def sample(self) -> dict[str, Any]:
        """This step's columns; ``{}`` without NVML, or if a reading fails (then never again this run)."""
        if self._nvml is None:
            return {}
        nv, h = self._nvml, self._handle
        try:
            reasons = int(self._reasons(h))
            return {SM_CLOCK: float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)),
                    MEM_CLOCK: float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM)),
                    POWER: nv.nvmlDeviceGetPowerUsage(h) / 1000.0,
                    TEMPERATURE: float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)),
                    REASONS: reasons, THROTTLED: bool(reasons & THROTTLE_MASK)}
        except Exception as e:  # noqa: BLE001
            warnings.warn(f"NVML reading failed ({e}): GPU state is not recorded from here on", GolfprofWarning,
                          stacklevel=2)
            self._nvml = None
            return {}


def summarize(steps: pd.DataFrame, timed: set[int] | None = None) -> dict[str, Any] | None:
    """summary.json's ``gpu_state`` for one rank: medians over the timed steps, and every step that throttled
    (warm-up included: a GPU already hot or capped there is worth knowing). None without GPU columns."""
    if THROTTLED not in steps.columns or steps[THROTTLED].isna().all():
        return None
    s = steps.dropna(subset=[THROTTLED])
    t = s[s["step"].isin(timed)] if timed is not None else s
    throttled = s[s[THROTTLED].astype(bool)]
    mask = 0
    for v in throttled[REASONS]:
        mask |= int(v)

    def med(col: str) -> float | None:
        return float(t[col].median()) if len(t) and col in t else None

    return {"median_sm_clock_mhz": med(SM_CLOCK), "median_mem_clock_mhz": med(MEM_CLOCK),
            "median_power_w": med(POWER), "max_temp_c": float(s[TEMPERATURE].max()),
            "throttled_steps": int(len(throttled)),
            "throttled_timed_steps": int(t[THROTTLED].astype(bool).sum()),
            "throttled_step_numbers": [int(x) for x in throttled["step"]][:50],
            "throttle_reasons": reason_names(mask), "sampled_steps": int(len(s))}


def merge_ranks(per_rank: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The run's ``gpu_state``: rank 0's medians, throttled steps summed over ranks, the reasons of all."""
    present = [(i, g) for i, g in enumerate(per_rank) if g]
    if not present:
        return None
    head = dict(present[0][1])
    head["throttled_steps"] = sum(g["throttled_steps"] for _, g in present)
    head["throttled_timed_steps"] = sum(g["throttled_timed_steps"] for _, g in present)
    head["throttle_reasons"] = sorted({r for _, g in present for r in g["throttle_reasons"]},
                                      key=list(THROTTLE_BITS).index)
    head["throttled_ranks"] = [i for i, g in present if g["throttled_steps"]]
    return head
