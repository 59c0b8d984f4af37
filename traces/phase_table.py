"""Per-phase CPU and GPU time, per profiled step.

Inclusive figures: a kernel counts in its innermost phase and in every enclosing one
(``gpu_self_ms`` is the innermost-only part, kernels and copies). ``gpu_kernel_ms`` sums kernel
durations (``kernels`` counts them), ``gpu_copy_ms`` memcpy and memset durations (``copies`` counts
them), ``gpu_busy_ms`` is the union of both (streams overlap), ``comm_ms`` the union of the
communication kernels and ``exposed_comm_ms`` the part of it with no compute kernel running on the
rank. ``cpu_ms`` is the wall time of the phase's ranges (their union, so a phase nested in itself
is not counted twice); ``sync_ms`` the part spent blocked in synchronising runtime calls, which is
waiting rather than launching. ``gpu_idle_ms`` is GPU idle time that ended with one of the phase's
kernels: time the GPU spent waiting for this phase to launch work.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
import pandas as pd

from . import attribute, metrics
from .comm import exposed_length

SYNC_RE = re.compile(
    r"Synchronize|^(cuda|hip)Memcpy(2D)?$|^cu(Memcpy|MemcpyDtoH|MemcpyHtoD)(_v2)?$"
)
COLUMNS = ["parent", "depth", "calls", "cpu_ms", "sync_ms", "kernels", "copies", "gpu_kernel_ms", "gpu_copy_ms",
           "gpu_self_ms", "gpu_busy_ms", "gpu_idle_ms", "comm_ms", "exposed_comm_ms"]
_GPU_COLUMNS = COLUMNS[5:]
COPY_CATS = ("gpu_memcpy", "gpu_memset")


def phase_table(
    ranges: pd.DataFrame,
    parent: np.ndarray,
    gpu: pd.DataFrame,
    gpu_range: np.ndarray,
    gpu_class: np.ndarray,
    gpu_gap: np.ndarray,
    sync: pd.DataFrame,
    sync_range: np.ndarray,
    compute: tuple[np.ndarray, np.ndarray],
    n_steps: int,
    has_gpu: bool,
) -> pd.DataFrame:
    """One row per phase name in order of first appearance; times in ms per step."""
    if ranges.empty:
        return pd.DataFrame(columns=COLUMNS)
    names = ranges["name"].to_numpy()
    chain = attribute.chains(names, parent)
    members: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(chain):
        for nm in c:
            members[nm].append(i)
    first = pd.Series(np.arange(len(names))).groupby(names, sort=False).first()
    order = np.argsort(ranges["ts"].to_numpy()[first.to_numpy()], kind="stable")
    g_ts, g_end, g_dur = gpu["ts"].to_numpy(), gpu["end"].to_numpy(), gpu["dur"].to_numpy()
    is_comm = gpu_class == metrics.COMM
    is_copy = gpu["cat"].isin(COPY_CATS).to_numpy()
    s_dur = sync["dur"].to_numpy()
    r_ts, r_end = ranges["ts"].to_numpy(), ranges["end"].to_numpy()
    rows = {}
    per = 1e3 * n_steps  # µs in total -> ms per step
    for nm in first.index[order]:
        i0 = int(first[nm])
        own = names == nm
        inside = np.asarray(members[nm])
        row = {
            "parent": names[parent[i0]] if parent[i0] >= 0 else None,
            "depth": len(chain[i0]) - 1,
            "calls": own.sum() / n_steps,
            "cpu_ms": metrics.length(metrics.merge(r_ts[own], r_end[own])) / per,
            "sync_ms": s_dur[np.isin(sync_range, inside)].sum() / per,
        }
        if has_gpu:
            k = np.isin(gpu_range, inside)
            kc = k & is_comm
            row |= {
                "kernels": (k & ~is_copy).sum() / n_steps,
                "copies": (k & is_copy).sum() / n_steps,
                "gpu_kernel_ms": g_dur[k & ~is_copy].sum() / per,
                "gpu_copy_ms": g_dur[k & is_copy].sum() / per,
                "gpu_self_ms": g_dur[k & (names[np.clip(gpu_range, 0, None)] == nm) & (gpu_range >= 0)].sum() / per,
                "gpu_busy_ms": metrics.length(metrics.merge(g_ts[k], g_end[k])) / per,
                "gpu_idle_ms": gpu_gap[k].sum() / per,
                "comm_ms": metrics.length(metrics.merge(g_ts[kc], g_end[kc])) / per,
                "exposed_comm_ms": exposed_length(g_ts[kc], g_end[kc], compute) / per,
            }
        else:
            row |= dict.fromkeys(_GPU_COLUMNS, np.nan)
        rows[nm] = row
    return pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS)
