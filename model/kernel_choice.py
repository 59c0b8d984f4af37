"""Which MLP, cross-entropy and projection kernels a run uses: the `mlp_kernel`, `ce_kernel` and `fp8` toggles.

Each fused or FP8 path needs something the run may lack (a CUDA GPU Triton runs on, FP8 tensor cores, bf16
weights); then the run takes the reference path and says so, once per toggle, with a GolfprofWarning, as the
Triton orthogonalizer and the attention kernels do. The model is built with what this returns.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from golfprof.errors import GolfprofWarning

from . import fp8 as FP8
from .config import Toggles
from .ortho_triton import available as triton_available


@dataclass(frozen=True)
class Kernels:
    """The paths that run: what `GPT(mlp_kernel=, ce_kernel=, fp8=)` takes."""

    mlp_kernel: str = "inductor"
    ce_kernel: str = "inductor"
    fp8: str = "off"


def _why_not(toggle: str, device: torch.device, bf16_weights: bool) -> str:
    """'' when the toggle's fast path can run here, else why not."""
    if toggle in ("mlp_kernel", "fp8") and not bf16_weights:
        return "its kernels take bf16 operands and --bf16 leaves the weights in fp32"
    if toggle == "fp8":
        return "" if FP8.available(device)[0] else FP8.available(device)[1]
    if device.type != "cuda":
        return f"Triton kernels need a CUDA GPU and this run is on {device.type}"
    ok, why = triton_available()
    return "" if ok else why


def resolve(toggles: Toggles, device: torch.device) -> Kernels:
    """The kernels this run uses; each toggle that cannot run here falls back with one warning."""
    bf16_weights = "weights" in toggles.bf16
    wanted = {"mlp_kernel": toggles.mlp_kernel, "ce_kernel": toggles.ce_kernel, "fp8": toggles.fp8}
    used = dict(wanted)
    for name, value in wanted.items():
        reference = "off" if name == "fp8" else "inductor"
        if value == reference:
            continue
        why = _why_not(name, device, bf16_weights)
        if why:
            warnings.warn(f"{name}={value} unavailable ({why}); using {name}={reference}",
                          GolfprofWarning, stacklevel=2)
            used[name] = reference
    return Kernels(**used)
