"""Give every piece of GPU work to the CPU range (phase) that launched it.

A kernel carries the correlation id of the runtime or driver call that launched it; that call has
a CPU thread and a time, and the phase is the innermost matching range open on that thread at that
time. Kernels launched from a thread with no open range (backward kernels come from the autograd
thread while ``.../backward`` is open on the main thread) go to the innermost range open on any
thread. A range's parent is the innermost range of its own thread that contains it, else the
innermost containing range of another thread, so a kernel counts once in its innermost phase and
again in the total of every enclosing one.
"""

from __future__ import annotations

import heapq

import numpy as np
import pandas as pd

from . import events


def open_range_map(ts: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-constant map time -> latest-started open range (a range is open on [ts, end)).

    Returns (bounds, top): from bounds[k] until bounds[k+1] the innermost open range is top[k]
    (an index into ts/end, -1 for none). Latest start wins; among equal starts the shorter one.
    """
    n = len(ts)
    if n == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    times = np.concatenate([ts, end])
    order = np.argsort(times, kind="stable")
    times_sorted = times[order]
    alive = np.zeros(n, bool)
    heap: list[tuple[float, float, int]] = []
    bounds: list[float] = []
    top: list[int] = []
    k = 0
    total = 2 * n
    while k < total:
        t = times_sorted[k]
        while k < total and times_sorted[k] == t:
            j = order[k]
            if j < n:
                alive[j] = True
                heapq.heappush(heap, (-ts[j], end[j], j))
            else:
                alive[j - n] = False
            k += 1
        while heap and not alive[heap[0][2]]:
            heapq.heappop(heap)
        cur = heap[0][2] if heap else -1
        if not top or top[-1] != cur:
            bounds.append(t)
            top.append(cur)
    return np.asarray(bounds, float), np.asarray(top, np.int64)


def _lookup(bounds: np.ndarray, top: np.ndarray, t: np.ndarray) -> np.ndarray:
    if len(bounds) == 0:
        return np.full(len(t), -1, np.int64)
    k = np.searchsorted(bounds, t, side="right") - 1
    return np.where(k >= 0, top[np.clip(k, 0, None)], -1)


def innermost(ranges: pd.DataFrame, thread: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Row of ``ranges`` (name, thread, ts, end) holding each query point; same thread first."""
    out = np.full(len(t), -1, np.int64)
    if ranges.empty or len(t) == 0:
        return out
    r_thread = ranges["thread"].to_numpy()
    r_ts = ranges["ts"].to_numpy()
    r_end = ranges["end"].to_numpy()
    for th in np.unique(r_thread):
        q = thread == th
        if not q.any():
            continue
        idx = np.flatnonzero(r_thread == th)
        bounds, top = open_range_map(r_ts[idx], r_end[idx])
        local = _lookup(bounds, top, t[q])
        out[q] = np.where(local >= 0, idx[np.clip(local, 0, None)], -1)
    miss = out < 0
    if miss.any():
        bounds, top = open_range_map(r_ts, r_end)
        out[miss] = _lookup(bounds, top, t[miss])
    return out


def parents(ranges: pd.DataFrame) -> np.ndarray:
    """Parent row of each range (-1 for a root): own thread's innermost container, else another's."""
    n = len(ranges)
    parent = np.full(n, -1, np.int64)
    if n == 0:
        return parent
    ts = ranges["ts"].to_numpy()
    end = ranges["end"].to_numpy()
    thread = ranges["thread"].to_numpy()
    order = np.lexsort((np.arange(n), thread, -end, ts))
    stacks: dict[int, list[int]] = {}
    for i in order.tolist():
        t0, t1 = ts[i], end[i]
        for st in stacks.values():  # ranges that ended cannot hold anything that starts later
            while st and end[st[-1]] <= t0:
                st.pop()
        own = stacks.setdefault(int(thread[i]), [])
        p = next((j for j in reversed(own) if end[j] >= t1), -1)
        if p < 0:
            best = None
            for th, st in stacks.items():
                if th == thread[i]:
                    continue
                j = next((j for j in reversed(st) if ts[j] <= t0 and end[j] >= t1), -1)
                if j >= 0 and (best is None or (ts[j], -end[j]) > (ts[best], -end[best])):
                    best = j
            p = -1 if best is None else best
        parent[i] = p
        own.append(i)
    return parent


def chains(names: np.ndarray, parent: np.ndarray) -> list[tuple[str, ...]]:
    """Distinct phase names from each range up to its root, innermost first."""
    n = len(names)
    out: list[tuple[str, ...] | None] = [None] * n

    def chain(i: int) -> tuple[str, ...]:
        path = []
        j = i
        while j >= 0 and out[j] is None:
            path.append(j)
            j = int(parent[j])
        acc: tuple[str, ...] = () if j < 0 else out[j]  # type: ignore[assignment]
        for k in reversed(path):
            nm = names[k]
            acc = acc if nm in acc else (nm,) + acc
            out[k] = acc
        return out[i]  # type: ignore[return-value]

    return [chain(i) for i in range(n)]


def match_launches(gpu: pd.DataFrame, launch: pd.DataFrame) -> pd.DataFrame:
    """gpu plus launch_ts / launch_thread (NaN / -1 where the launch is not in the trace).

    Many kernels may share one launch: a cudaGraphLaunch's correlation id is on every kernel of
    the graph. Should a trace repeat a correlation id on the CPU side, the first call wins.
    """
    corr = launch["correlation"].to_numpy()
    order = np.argsort(corr, kind="stable")
    corr_sorted = corr[order]
    g_corr = gpu["correlation"].to_numpy()
    pos = np.searchsorted(corr_sorted, g_corr)
    pos_c = np.clip(pos, 0, max(len(corr_sorted) - 1, 0))
    hit = (len(corr_sorted) > 0) & (g_corr >= 0)
    if len(corr_sorted):
        hit = hit & (corr_sorted[pos_c] == g_corr)
    src = order[pos_c] if len(order) else np.zeros(len(gpu), np.int64)
    l_ts = launch["ts"].to_numpy()
    l_th = launch["thread"].to_numpy()
    return gpu.assign(
        launch_ts=np.where(hit, l_ts[src] if len(l_ts) else np.nan, np.nan),
        launch_thread=np.where(hit, l_th[src] if len(l_th) else -1, -1),
    )


def launched_work(events_df: pd.DataFrame) -> pd.DataFrame:
    """A trace's GPU work (``events.gpu_work``) with the launch of each piece (``match_launches``)."""
    return match_launches(events.gpu_work(events_df), events.launches(events_df))


def launch_time(matched: pd.DataFrame) -> np.ndarray:
    """When each GPU row of ``match_launches``' result was launched, else its own start.

    A kernel belongs to the profiler step that launched it (it may run after the step's CPU range
    ends); work whose launch is not in the trace falls back to when it ran.
    """
    return np.where(matched["launch_thread"].to_numpy() >= 0, matched["launch_ts"].to_numpy(), matched["ts"].to_numpy())


def attribute(gpu: pd.DataFrame, launch: pd.DataFrame, ranges: pd.DataFrame) -> np.ndarray:
    """Innermost range row for each GPU row (-1: launch missing or outside every range)."""
    m = match_launches(gpu, launch)
    has = m["launch_thread"].to_numpy() >= 0
    out = np.full(len(gpu), -1, np.int64)
    if has.any():
        out[has] = innermost(ranges, m["launch_thread"].to_numpy()[has], m["launch_ts"].to_numpy()[has])
    return out
