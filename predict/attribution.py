"""Where a target GPU's extra (or saved) time goes, phase by phase of the step.

A kernel that runs longer on the target lengthens the step only if it is on the critical path: where the GPU
waited for the CPU (a launch-bound stretch, the record loader's copy) or ran it beside another stream, the growth
is absorbed. So, for each top-level phase of the step (``golfprof/step/<phase>``: data, forward, backward,
optimizer ...; each instance, e.g. each micro-batch's forward, in turn), from the source side's replay and the
target side's of the same items:

- ``source_ms`` / ``target_ms``: the GPU time of the kernels launched inside it, on each side; ``grown_ms`` their
  difference;
- ``starts_later_ms`` / ``ends_later_ms``: how much later than on the source its first kernel starts and its last
  ends (of its first and last instance): what it inherits and what it hands on;
- ``own_ms``: what the phase itself adds on the target (its instances' end delay minus start delay, summed);
- ``absorbed_ms``: ``grown_ms - own_ms``, growth that ran beside other work or in the GPU's idle time inside it.
Between phases, a drop from one phase's ``ends_later_ms`` to the next's ``starts_later_ms`` is delay the GPU's
idle time soaked up (it waited for the CPU's launches there). The row ``(after the phases)`` starts from the last
phase's end delay and ends at the step's change (the tail, the collectives after the last phase).

Pure over the replay's arrays; medians over the replayed steps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from golfprof.profiler.names import is_top_level

from .replay import RoleStep, RoleTimeline

AFTER = "(after the phases)"
COLUMNS = ["phase", "kernels", "source_ms", "target_ms", "grown_ms", "starts_later_ms", "ends_later_ms", "own_ms",
           "absorbed_ms"]


def top_ranges(ranges: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """The step's direct sub-phases, each instance, in start order."""
    return sorted((r for r in ranges if is_top_level(r[0])), key=lambda r: r[1])


def by_phase(src: RoleStep, src_tl: RoleTimeline, tgt: RoleStep, tgt_tl: RoleTimeline,
             ranges: list[tuple[str, float, float]]) -> pd.DataFrame:
    """One step's attribution (ms; columns COLUMNS, one row per phase name, then AFTER). ``src`` and ``tgt`` are
    the same items (the same launches) with each side's durations; ``*_tl`` their replayed timelines."""
    rows: dict[str, dict[str, float]] = {}
    outside = np.ones(len(src.launch), bool)
    last_end = 0.0
    for name, a, b in top_ranges(ranges):
        m = (src.launch >= a) & (src.launch < b)
        outside &= ~m
        if not m.any():
            continue
        starts = float(tgt_tl.start[m].min() - src_tl.start[m].min())
        last_end = float(tgt_tl.end[m].max() - src_tl.end[m].max())
        r = rows.setdefault(name, {"kernels": 0, "source_ms": 0.0, "target_ms": 0.0, "starts_later_ms": starts,
                                   "own_ms": 0.0})
        r["kernels"] += int(m.sum())
        r["source_ms"] += float(src.dur[m].sum())
        r["target_ms"] += float(tgt.dur[m].sum())
        r["ends_later_ms"] = last_end
        r["own_ms"] += last_end - starts
    step = tgt_tl.delta - src_tl.delta  # the step's change (µs), as replayed
    rows[AFTER] = {"kernels": int(outside.sum()), "source_ms": float(src.dur[outside].sum()),
                   "target_ms": float(tgt.dur[outside].sum()), "starts_later_ms": last_end, "ends_later_ms": step,
                   "own_ms": step - last_end}
    f = pd.DataFrame([{"phase": n, **r} for n, r in rows.items()])
    for c in ("source_ms", "target_ms", "starts_later_ms", "ends_later_ms", "own_ms"):
        f[c] = f[c] / 1e3  # µs -> ms
    f["grown_ms"] = f["target_ms"] - f["source_ms"]
    f["absorbed_ms"] = f["grown_ms"] - f["own_ms"]
    return f[COLUMNS]


def median_over_steps(frames: list[pd.DataFrame]) -> list[dict]:
    """Per phase, the median of each column over the steps (phases in the first step's order)."""
    if not frames:
        return []
    order = list(dict.fromkeys(p for f in frames for p in f["phase"]))
    med = pd.concat(frames).groupby("phase", sort=False).median(numeric_only=True).reindex(order)
    return [{"phase": p, **{c: (int(round(v)) if c == "kernels" else float(v)) for c, v in row.items()}}
            for p, row in med.iterrows()]
