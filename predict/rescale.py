"""A played rank's kernels on another GPU: each classified by what bounds it, then rescaled by the target's peaks.

Two rules, both reported (the prediction's interval spans them):

**split** (the prediction's figure). A memory-bound kernel's measured time d is split into its bandwidth part m,
the time its bytes B take at the bandwidth a streaming kernel reaches on the source (η_s·W_s,
``achievable_bw_fraction``), capped at d, and the rest d − m (latency, launch tails, the SMs' own work). On the
target each part scales with its resource: d' = (d − m)·P_s/P_t + m·η_s·W_s/(η_t·W_t). A kernel far below the
bandwidth it could reach keeps most of its time between GPUs of one die (H200 → H100: the same 132 SMs, less HBM
bandwidth); a streaming kernel at the achievable bandwidth scales fully with it. A compute-bound kernel moves
its bytes under its FLOPs: it scales by the roofline rule below.

**roofline** (the alternative). A kernel whose FLOPs F and bytes B are known would take t_c = F / peak FLOP/s and
t_m = B / HBM bandwidth at the peaks; it is **compute**-bound when t_c ≥ t_m (its intensity F/B is above the
ridge point) and **memory**-bound otherwise. Its measured time scales as its roofline bound does (its distance
from the bound, the kernel's own inefficiency, carried over): d' = d · max(F/P_t, B/W_t) / max(F/P_s, B/W_s):
the ratio of the peaks of the resource that bounds it, except where its intensity lies between the two GPUs'
ridge points and the bound changes sides. It overstates the slowdown of a kernel that is slow for other reasons
than bandwidth (on a trace where it and split differ most, the latency-bound ones).

Under both rules a kernel without shapes is classified by its name (GEMM and attention families compute-bound;
elementwise, reduction, copy and split-K reduce kernels memory-bound) and scaled by its class's one ratio,
P_s/P_t or W_s/W_t. Memcpy and memset are memory.
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


SPLIT, ROOFLINE = "split", "roofline"
RULES = {
    SPLIT: "split: shapes known -> memory-bound: (d - m) * P_s/P_t + m * (eta_s W_s)/(eta_t W_t), m = min(d, "
           "B/(eta_s W_s)); compute-bound: as roofline; else by name: compute-bound x P_s/P_t, memory-bound x W_s/W_t",
    ROOFLINE: "roofline: shapes known -> d * max(F/P_t, B/W_t) / max(F/P_s, B/W_s); else by name: compute-bound "
              "x P_s/P_t, memory-bound x W_s/W_t",
}


def scale(names: list[str], flops: np.ndarray, nbytes: np.ndarray, dur: np.ndarray, src: Device, tgt: Device,
          rule: str = SPLIT) -> np.ndarray:
    """Target time / source time per kernel of measured durations ``dur`` (µs), by ``rule`` (above)."""
    if rule not in RULES:
        raise ValueError(f"rescale rule {rule!r}: valid: {', '.join(RULES)}")
    cls, basis = classify(names, flops, nbytes, src)
    f, b, d = np.nan_to_num(flops), np.nan_to_num(nbytes), np.asarray(dur, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        known = np.maximum(f / tgt.peak_flops, b / tgt.hbm_bw) / np.maximum(f / src.peak_flops, b / src.hbm_bw)
        if rule == SPLIT:  # memory-bound kernels only: a compute-bound one moves its bytes under its FLOPs
            m = np.minimum(d, b / (src.bw_fraction * src.hbm_bw) * 1e6)  # µs, as dur
            bw = (src.bw_fraction * src.hbm_bw) / (tgt.bw_fraction * tgt.hbm_bw)
            split = np.where(d > 0, ((d - m) * src.peak_flops / tgt.peak_flops + m * bw) / np.where(d > 0, d, 1), 1.0)
            known = np.where(cls == COMPUTE, known, split)
    one = np.where(cls == COMPUTE, src.peak_flops / tgt.peak_flops, src.hbm_bw / tgt.hbm_bw)
    return np.where(basis == "shapes", known, one).astype(float)


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
            tgt: Device, rule: str = SPLIT) -> pd.DataFrame:
    """Per (class, basis): kernels, source ms and target ms of one step, for the prediction document."""
    cls, basis = classify(names, flops, nbytes, src)
    r = scale(names, flops, nbytes, dur, src, tgt, rule)
    f = pd.DataFrame({"class": cls, "basis": basis, "source_ms": dur / 1e3, "target_ms": dur * r / 1e3})
    return f.groupby(["class", "basis"], as_index=False).agg(kernels=("source_ms", "size"),
                                                              source_ms=("source_ms", "sum"),
                                                              target_ms=("target_ms", "sum"))
