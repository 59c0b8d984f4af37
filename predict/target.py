"""--target-gpu: the played rank's GPU kernels on another GPU, and the slowdown each suffers under communication.

Pure over the replay's inputs: given each step's roles, their kernels' names and FLOPs/bytes (predict/shapes.py)
and the source and target device entries, the roles as they would run on the target (predict/rescale.py) and,
on either side, each kernel's interference factor (predict/interference.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import costmodel, rescale
from .devices import Device
from .interference import Interference, channel_model
from .replay import RoleStep


@dataclass(frozen=True)
class Side:
    """One GPU a prediction is made for: its device entry, comm table and interference."""

    device: Device
    model: costmodel.CommModel
    interference: Interference


def side(device: Device, comm_model: str | None) -> Side:
    """The side of `device`: the comm table given, else the device's bundled one (else h200)."""
    model = costmodel.load(comm_model or device.comm_table or "h200")
    return Side(device, model, channel_model(model, device))


@dataclass(frozen=True)
class Kernels:
    """One role's kernels in one step: names and their FLOPs and bytes (NaN where unknown)."""

    names: list[str]
    flops: np.ndarray
    nbytes: np.ndarray


def on_side(role: RoleStep, k: Kernels, src: Device, s: Side, rule: str = rescale.SPLIT) -> RoleStep:
    """The role as it runs on the side's GPU: rescaled from the source by ``rule``, each kernel slowed by its
    class's factor."""
    cls, _ = rescale.classify(k.names, k.flops, k.nbytes, src)
    ratio = None if s.device.key == src.key else rescale.scale(k.names, k.flops, k.nbytes, role.dur, src, s.device,
                                                               rule)
    out = role if ratio is None else rescale.target_role(role, ratio)
    return dataclasses.replace(out, slow=s.interference.per_item(cls))


def kernel_summary(role: RoleStep, k: Kernels, src: Device, tgt: Device, rule: str = rescale.SPLIT) -> list[dict]:
    f: pd.DataFrame = rescale.summary(k.names, role.dur, k.flops, k.nbytes, src, tgt, rule)
    return f.to_dict("records")
