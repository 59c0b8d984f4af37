"""A played rank's kernels on another GPU: each classified by what bounds it, then rescaled by the target's peaks.

The roofline rule. A kernel whose FLOPs F and bytes B are known (its op's shapes, predict/shapes.py) would take
t_c = F / peak FLOP/s and t_m = B / HBM bandwidth at the source GPU's peaks; it is **compute**-bound when
t_c ≥ t_m (its achieved FLOP/s is the larger share of the peak: its intensity F/B is above the ridge point) and
**memory**-bound otherwise. Its measured time d scales as its roofline bound does (its distance from the bound,
the kernel's own inefficiency, carried over): d' = d · max(F/P_t, B/W_t) / max(F/P_s, B/W_s): the ratio of the
peaks of the resource that bounds it, except where its intensity lies between the two GPUs' ridge points and
the bound changes sides. A kernel without shapes is classified
by its name (GEMM and attention families compute-bound; elementwise, reduction, copy and split-K reduce
kernels memory-bound) and scaled by its class's one ratio, P_s/P_t or W_s/W_t. Memcpy and memset are memory.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd

from .devices import Device
from .replay import RoleStep

COMPUTE, MEMORY = "compute", "memory"
_MEMORY_RE = re.compile(r"splitKreduce|reduce_head|convert_|compute_dot|elementwise|Memcpy|Memset|copy", re.I)
_COMPUTE_RE = re.compile(r"gemm|nvjet|cutlass|xmma|wgmma|cublas|matmul|sdpa|flash|fmha|attention|attn", re.I)
QUEUED_US = 1.0  # a kernel starting within this of its stream predecessor's end was queued behind it


def name_class(name: str) -> str:
    """The class of a kernel known only by name."""
    if _MEMORY_RE.search(name):
        return MEMORY
    return COMPUTE if _COMPUTE_RE.search(name) else MEMORY


def classify(names: list[str], flops: np.ndarray, nbytes: np.ndarray, src: Device) -> tuple[np.ndarray, np.ndarray]:
    """(class, basis) per kernel: basis "shapes" where FLOPs and bytes are known, else "name"."""
    known = np.isfinite(flops) & np.isfinite(nbytes) & ((flops > 0) | (nbytes > 0))
    by_roof = np.where(np.nan_to_num(flops) / src.peak_flops >= np.nan_to_num(nbytes) / src.hbm_bw, COMPUTE, MEMORY)
    by_name = np.array([name_class(n) for n in names], dtype=object)
    return np.where(known, by_roof, by_name), np.where(known, "shapes", "name")


def scale(names: list[str], flops: np.ndarray, nbytes: np.ndarray, src: Device, tgt: Device) -> np.ndarray:
    """Target time / source time per kernel (the roofline rule above)."""
    cls, basis = classify(names, flops, nbytes, src)
    f, b = np.nan_to_num(flops), np.nan_to_num(nbytes)
    with np.errstate(divide="ignore", invalid="ignore"):
        roof = np.maximum(f / tgt.peak_flops, b / tgt.hbm_bw) / np.maximum(f / src.peak_flops, b / src.hbm_bw)
    one = np.where(cls == COMPUTE, src.peak_flops / tgt.peak_flops, src.hbm_bw / tgt.hbm_bw)
    return np.where(basis == "shapes", roof, one).astype(float)


def target_role(role: RoleStep, ratio: np.ndarray) -> RoleStep:
    """The role with every kernel's duration scaled; a kernel that was queued behind its stream predecessor
    may now start as early as its launch (it was held by the GPU, not the CPU), one held by its launch stays."""
    start = role.start.copy()
    last_end: dict[int, float] = {}
    for k in range(len(start)):
        s = int(role.stream[k])
        if s in last_end and role.start[k] - last_end[s] <= QUEUED_US:
            start[k] = min(role.start[k], role.launch[k])
        last_end[s] = role.start[k] + role.dur[k]
    last = role.last if role.last is not None else max([role.begin, *(role.start + role.dur)])
    return dataclasses.replace(role, start=start, dur=role.dur * ratio, last=last)


def summary(names: list[str], dur: np.ndarray, flops: np.ndarray, nbytes: np.ndarray, src: Device,
            tgt: Device) -> pd.DataFrame:
    """Per (class, basis): kernels, source ms and target ms of one step, for the prediction document."""
    cls, basis = classify(names, flops, nbytes, src)
    r = scale(names, flops, nbytes, src, tgt)
    f = pd.DataFrame({"class": cls, "basis": basis, "source_ms": dur / 1e3, "target_ms": dur * r / 1e3})
    return f.groupby(["class", "basis"], as_index=False).agg(kernels=("source_ms", "size"),
                                                              source_ms=("source_ms", "sum"),
                                                              target_ms=("target_ms", "sum"))
