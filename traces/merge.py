"""Every rank of a run in one Chrome/Perfetto trace: one process per rank, clocks aligned, phases kept.

Perfetto opens one trace at a time, so ranks of a run are read side by side only once they share a file.
Each rank becomes one process (``pid`` = rank, named ``rank N``); its CPU threads and GPU streams become
its threads, named as in the rank's own trace. Times go on one clock: each file's ``baseTimeNanoseconds``
is added and the rank's measured clock offset (``clocks.offsets``) taken off, then all count from the
earliest event. Events are rebuilt from the loaded columns (name, category, times, correlation, stream),
so CPU ranges (the phases), launches, kernels, copies and collectives are kept; the source files' other
arguments and flow arrows are not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np

from .load import Trace
from .metrics import GPU_CATS

_DUMP = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def thread_names(trace: Trace) -> dict[tuple[str, str], str]:
    """(pid, tid) of the rank's own trace -> a thread name for the merged one."""
    ev = trace.events
    gpu = ev["cat"].isin(GPU_CATS).to_numpy()
    pairs = {}
    for p, t, g in zip(ev["pid"].astype(str), ev["tid"].astype(str), gpu):
        if (p, t) not in pairs:
            pairs[(p, t)] = f"GPU {p} stream {t}" if g else f"CPU {p} thread {t}"
    return pairs


def chrome_events(trace: Trace, rank: int, shift_us: float) -> Iterator[str]:
    """The rank's events as Chrome-trace JSON objects (one string each), times moved by ``shift_us``."""
    names = thread_names(trace)
    tids = {key: i + 1 for i, key in enumerate(names)}
    yield _DUMP({"ph": "M", "name": "process_name", "pid": rank, "tid": 0, "args": {"name": f"rank {rank}"}})
    yield _DUMP({"ph": "M", "name": "process_sort_index", "pid": rank, "tid": 0, "args": {"sort_index": rank}})
    for key, tid in tids.items():
        yield _DUMP({"ph": "M", "name": "thread_name", "pid": rank, "tid": tid, "args": {"name": names[key]}})
    ev = trace.events
    ts = np.round(ev["ts"].to_numpy() + shift_us, 3)
    cols = zip(ev["cat"].astype(str), ev["name"].astype(str), ev["pid"].astype(str), ev["tid"].astype(str), ts,
               ev["dur"].to_numpy(), ev["correlation"].to_numpy(), ev["stream"].to_numpy())
    for cat, name, pid, tid, t, dur, corr, stream in cols:
        e = {"ph": "X", "cat": cat, "name": name, "pid": rank, "tid": tids[(pid, tid)], "ts": float(t),
             "dur": float(dur)}
        args = {}
        if corr >= 0:
            args["correlation"] = int(corr)
        if stream >= 0:
            args["stream"] = int(stream)
        if args:
            e["args"] = args
        yield _DUMP(e)


def shifts(starts_us: dict[int, float], bases_us: dict[int, float], offsets_us: dict[int, float]) -> dict[int, float]:
    """Per rank, what to add to its ``ts`` so that every rank is on one clock counting from the earliest
    event: its base, less its clock offset (NaN: none measured, taken as 0), less the common origin."""
    unix = {r: bases_us[r] - (offsets_us.get(r, 0.0) if offsets_us.get(r) == offsets_us.get(r) else 0.0)
            for r in starts_us}
    origin = min(starts_us[r] + unix[r] for r in starts_us) if starts_us else 0.0
    return {r: unix[r] - origin for r in starts_us}
