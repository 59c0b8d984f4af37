"""How much slower compute runs while a collective runs beside it, per kernel class.

A collective's NCCL kernel holds about one SM per channel and moves its bytes through HBM. The channel model:

- a **compute**-bound kernel loses the SMs the channels hold: slowdown nch / (SMs − nch);
- a **memory**-bound kernel shares HBM with the collective, which reads what it sends and writes what arrives
  (HBM_PER_BUS_BYTE bytes of HBM per byte on the link) at the table's all-reduce bus bandwidth: a share
  h = busbw · 2 / HBM bandwidth, slowdown h / (1 − h).

A comm table that `golfprof bench comm --interference` calibrated carries ``interference_probe`` (the measured
slowdown of the trainer's GEMM shapes beside a bandwidth-bound kernel on nch SMs): it replaces the compute-bound
figure. Without a device entry (a CPU run, no --target-gpu) the table's one literature ``interference`` factor
applies to everything, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .costmodel import CommModel
from .devices import Device
from .rescale import COMPUTE

HBM_PER_BUS_BYTE = 2.0  # one read of what is sent, one write of what arrives
MAX_HBM_SHARE = 0.9


@dataclass(frozen=True)
class Interference:
    compute: float
    memory: float
    basis: str  # "probe" (calibrated compute figure) or "channels"

    def per_item(self, classes: np.ndarray) -> np.ndarray:
        return np.where(classes == COMPUTE, self.compute, self.memory).astype(float)

    def as_dict(self) -> dict[str, float | str]:
        return {"compute_bound": self.compute, "memory_bound": self.memory, "basis": self.basis}


def channel_model(model: CommModel, dev: Device) -> Interference:
    """The slowdowns on `dev` under the channels and bus bandwidth `model` assumes (a probe's figure first)."""
    nch = min(model.nchannels, dev.sm_count - 1)
    compute = nch / (dev.sm_count - nch)
    bus = max(model.nvlink.bus_bw.values()) * 1e9 if model.nvlink is not None and model.nvlink.bus_bw else 0.0
    share = min(MAX_HBM_SHARE, bus * HBM_PER_BUS_BYTE / dev.hbm_bw)
    memory = share / (1.0 - share)
    if model.probe is not None:
        return Interference(model.probe, memory, "probe")
    return Interference(compute, memory, "channels")
