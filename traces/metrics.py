"""Interval arithmetic and the rank-level GPU figures: busy, idle, compute/communication overlap.

``idle_pct`` and ``comm_comp_overlap_pct`` follow HolisticTraceAnalysis 0.6 (hta/analyzers/
breakdown_analysis.py ``get_temporal_breakdown`` and communication_analysis.py
``get_comm_comp_overlap``) so that the numbers agree with it on the same file, quirks included:

* HTA rounds a file to whole µs when its ``ts`` column is float (ceil the start, floor the end);
* when the traces hold two or more distinct ``ProfilerStep#N`` names (over all ranks) it keeps only
  CPU events that start before the last profiler step and the GPU events they launched;
* "kernels" are all kept rows with a numeric ``args.stream`` (a Triton ``cpu_op`` with stream 0
  included), idle = span from first kernel start to last kernel end minus their union;
* overlap = |union(comm) ∩ union(compute)| / |union(comm)|, kernels classed by name.

``gpu_busy_pct`` is golfprof's own: union of kernels, memcpys and memsets over the profiler-step
window (all steps, none dropped) divided by the window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .events import STEP_RE, name_mask

# Kernel classes copied from HolisticTraceAnalysis (hta/common/types.py), so HTA need not be installed.
HTA_COMM = re.compile(r"(^nccl.*)|(^hip)|(^hccl)|(.*ncclKernel.*)")
HTA_MEMORY = re.compile(r"(^(hip)?Memcpy)|(^(hip)?Memset)|(^dma)")
HTA_NOT_COMPUTE = re.compile(
    r"(^nccl)|(.*Memcpy)|(.*Memset)|(.*dma)|(^.*Sync)|(^Stream Wait Event)|(cuda.*LaunchKernel)"
    r"|(^runFunction)|(^hip)|(^job_exe)|(^packet)|(^pe_exe)|(^cpum_exe_subgraph)|(^hccl)"
    r"|(^collective_subgraph_execution)"
)
COMM, MEMORY, COMPUTE, OTHER = 0, 1, 2, 3
GPU_CATS = ("kernel", "gpu_memcpy", "gpu_memset", "cuda_sync", "gpu_user_annotation")  # rows the GPU itself ran
_HTA_SYNC_NAMES = ("Event Sync", "Context Sync")


def kernel_class(names: pd.Series) -> np.ndarray:
    """HTA's class (COMM, MEMORY, COMPUTE, OTHER) of each row of a categorical name column."""
    cats = names.cat.categories

    def one(n: str) -> int:
        if HTA_COMM.match(n):
            return COMM
        if HTA_MEMORY.match(n):
            return MEMORY
        return OTHER if HTA_NOT_COMPUTE.match(n) else COMPUTE

    per_cat = np.fromiter((one(c) for c in cats), np.int8, len(cats))
    codes = names.cat.codes.to_numpy()
    return per_cat[codes] if len(codes) else np.zeros(0, np.int8)


def merge(ts: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals as sorted disjoint (start, end) arrays; touching intervals join (as HTA)."""
    if len(ts) == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(ts, kind="stable")
    s = np.asarray(ts, float)[order]
    e = np.maximum.accumulate(np.asarray(end, float)[order])
    new = np.ones(len(s), bool)
    new[1:] = s[1:] > e[:-1]
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, len(s) - 1]
    return s[first], e[last]


def length(merged: tuple[np.ndarray, np.ndarray]) -> float:
    # sum of differences: timestamps near 1.7e15 µs make sum(end) - sum(start) lose whole µs
    return float(np.sum(merged[1] - merged[0]))


def intersection(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """|A ∩ B| for two merged interval sets (HTA's running-status sweep, value 3 = both)."""
    if len(a[0]) == 0 or len(b[0]) == 0:
        return 0.0
    t = np.concatenate([a[0], a[1], b[0], b[1]])
    d = np.concatenate([np.full(len(a[0]), 1), np.full(len(a[0]), -1), np.full(len(b[0]), 2), np.full(len(b[0]), -2)])
    order = np.argsort(t, kind="stable")
    t, run = t[order], np.cumsum(d[order])
    return float(np.sum(np.diff(t)[run[:-1] == 3]))


def gaps_before(ts: np.ndarray, end: np.ndarray, lo: float) -> np.ndarray:
    """GPU idle time ending at each row's start: nonzero only where a row ends an idle gap.

    The kernel that ends a gap is the one the GPU was waiting for, so the gap is charged to the
    phase that launched it. Gaps are clipped to start no earlier than ``lo``.
    """
    out = np.zeros(len(ts))
    if len(ts) < 2:
        return out
    order = np.argsort(ts, kind="stable")
    s = np.asarray(ts, float)[order]
    e = np.maximum.accumulate(np.asarray(end, float)[order])
    idx = np.flatnonzero(s[1:] > e[:-1]) + 1
    out[order[idx]] = np.maximum(s[idx] - np.maximum(e[idx - 1], lo), 0.0)
    return out


def clip(merged: tuple[np.ndarray, np.ndarray], lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    s, e = np.clip(merged[0], lo, hi), np.clip(merged[1], lo, hi)
    keep = e > s
    return s[keep], e[keep]


def gpu_busy_pct(gpu: pd.DataFrame, lo: float, hi: float) -> float | None:
    """Share of [lo, hi) during which any kernel, memcpy or memset runs."""
    if hi <= lo or gpu.empty:
        return None
    busy = length(clip(merge(gpu["ts"].to_numpy(), gpu["end"].to_numpy()), lo, hi))
    return 100.0 * busy / (hi - lo)


@dataclass(frozen=True)
class HtaFigures:
    """Temporal breakdown and overlap as HTA computes them for one rank (µs and %)."""

    kernel_time_us: float
    idle_us: float
    compute_us: float
    comm_us: float
    overlap_us: float

    @property
    def idle_pct(self) -> float | None:
        return 100.0 * self.idle_us / self.kernel_time_us if self.kernel_time_us > 0 else None

    @property
    def compute_pct(self) -> float | None:
        return 100.0 * self.compute_us / self.kernel_time_us if self.kernel_time_us > 0 else None

    @property
    def overlap_pct(self) -> float | None:
        return 100.0 * self.overlap_us / self.comm_us if self.comm_us > 0 else None


def hta_step_names(events: pd.DataFrame) -> set[str]:
    """ProfilerStep#N names present; HTA filters steps only when all ranks together hold two or more."""
    used = events["name"].cat.remove_unused_categories().cat.categories
    return {n for n in used if STEP_RE.match(n)}


def hta_cpu_compute(events: pd.DataFrame, classes: np.ndarray | None = None) -> tuple[int, float]:
    """CPU-side rows HTA counts as GPU compute kernels (count, total µs): CPU ops carrying a numeric
    ``args.stream``, as Triton's ``cpu_op`` launch rows do. golfprof's own figures count GPU work only,
    so these explain a gap between the two overlaps."""
    stream = events["stream"].to_numpy()
    cpu = ~events["cat"].isin(GPU_CATS).to_numpy()
    cls = kernel_class(events["name"]) if classes is None else classes
    m = cpu & (stream >= 0) & (cls == COMPUTE)
    return int(m.sum()), float(events["dur"].to_numpy()[m].sum())


def hta_figures(events: pd.DataFrame, ts_is_float: bool, drop_last_step: bool,
                classes: np.ndarray | None = None) -> HtaFigures | None:
    """HTA's idle / compute / overlap for one rank; None where HTA has no kernels (it crashes there).

    ``classes``: ``kernel_class(events["name"])`` when the caller has it already."""
    ts = events["ts"].to_numpy()
    end = ts + events["dur"].to_numpy()
    if ts_is_float:
        ts, end = np.ceil(ts), np.floor(end)
    stream = events["stream"].to_numpy()
    corr = events["correlation"].to_numpy()
    is_sync = events["name"].isin(_HTA_SYNC_NAMES).to_numpy()
    gpu = ((stream >= 0) & (corr >= 0)) | is_sync
    keep = np.ones(len(ts), bool)
    cpu = ~gpu
    if drop_last_step and cpu.any():
        step_rows = cpu & name_mask(events["name"], STEP_RE)
        last_start = ts[step_rows].max() if step_rows.any() else ts[cpu].min()
        keep_cpu = cpu & (ts < last_start)
        keep = keep_cpu | (gpu & np.isin(corr, corr[keep_cpu]))
    k = keep & (stream != -1)
    if not k.any():
        return None
    cls = kernel_class(events["name"]) if classes is None else classes
    all_k = merge(ts[k], end[k])
    span = float(all_k[1][-1] - all_k[0][0])
    comp = merge(ts[k & (cls == COMPUTE)], end[k & (cls == COMPUTE)])
    comm = merge(ts[k & (cls == COMM)], end[k & (cls == COMM)])
    return HtaFigures(
        kernel_time_us=span,
        idle_us=span - length(all_k),
        compute_us=length(comp),
        comm_us=length(comm),
        overlap_us=intersection(comm, comp),
    )
