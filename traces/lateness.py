"""Why the late rank is late: where it spent the time the others waited for it.

A rank that reaches a collective last started its kernel later than its peers. Either its CPU launched the
collective later (the host was behind: a slow phase, a data stall), or the launch was on time and the kernel
sat in the GPU's queue behind earlier work (the GPU was behind: more or slower kernels before it). Per
collective the rank records when it was launched, when it started, and what its GPU ran in between
(``queue_before``); across ranks, on one clock (``clocks.offsets``), the late rank's figures are compared
with the waiting rank's (``late_reasons``).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from . import metrics
from .comm import match_collectives

COLUMNS = ["rank", "op", "late_rank", "matched", "start_late_ms", "launch_late_ms", "queue_ms", "queue_busy_ms",
           "queue_phase", "queue_kernel"]


def queue_before(comm: pd.DataFrame, gpu: pd.DataFrame, phase: np.ndarray) -> pd.DataFrame:
    """Per communication row: compute busy time on the rank's GPU between its launch and its start
    (``queue_busy``, µs), and the phase and kernel holding most of it (``queue_phase``, ``queue_kernel``)."""
    if comm.empty:  # one GPU: nothing to explain, and nothing spent on the GPU's kernels
        return pd.DataFrame({"queue_busy": [], "queue_phase": [], "queue_kernel": []}, index=comm.index)
    comp = gpu["cls"].to_numpy() == metrics.COMPUTE
    ts, end = gpu["ts"].to_numpy()[comp], gpu["end"].to_numpy()[comp]
    order = np.argsort(ts, kind="stable")
    ts, end = ts[order], end[order]
    reach = np.maximum.accumulate(end) if len(end) else end  # kernels before j all end by reach[j - 1]
    p_code, p_names = pd.factorize(np.asarray(phase, dtype=object)[comp][order])
    k_code = gpu["name"].cat.codes.to_numpy()[comp][order]  # categorical codes: no string column built
    k_names = gpu["name"].cat.categories
    busy, top_phase, top_kernel = [], [], []
    for lo, hi in zip(comm["launch_ts"].to_numpy(), comm["ts"].to_numpy()):
        if not np.isfinite(lo) or hi <= lo:
            busy.append(0.0 if np.isfinite(lo) else np.nan)
            top_phase.append(None)
            top_kernel.append(None)
            continue
        j = int(np.searchsorted(reach, lo, side="right"))  # the first kernel that may still run after lo
        i = int(np.searchsorted(ts, hi, side="left"))  # kernels that started before the collective did
        s, e = np.clip(ts[j:i], lo, hi), np.clip(end[j:i], lo, hi)
        live = e > s
        d = (e - s)[live]
        busy.append(metrics.length(metrics.merge(s[live], e[live])))
        if d.size:
            top_phase.append(str(p_names[np.bincount(p_code[j:i][live], weights=d).argmax()]))
            top_kernel.append(str(k_names[np.bincount(k_code[j:i][live], weights=d).argmax()]))
        else:
            top_phase.append(None)
            top_kernel.append(None)
    return pd.DataFrame({"queue_busy": busy, "queue_phase": top_phase, "queue_kernel": top_kernel},
                        index=comm.index)


def _mode(values: pd.Series) -> str | None:
    c = Counter(v for v in values if isinstance(v, str))
    return c.most_common(1)[0][0] if c else None


def late_reasons(seqs: dict[int, pd.DataFrame], skew: pd.DataFrame, offsets: pd.DataFrame) -> pd.DataFrame:
    """Per waiting (rank, op) of ``skew``: how much later the rank it waits for started and launched the
    collectives where it was last (medians, ms, on one clock), how long they queued on its GPU, how much of
    that its GPU was busy, and the phase and kernel it was busy with."""
    if skew.empty or not len(seqs):
        return pd.DataFrame(columns=COLUMNS)
    dur, start, launch, busy, qphase, qkernel, info = match_collectives(
        seqs, ("dur", "start", "launch", "queue_busy", "queue_phase", "queue_kernel"))
    if dur.empty:
        return pd.DataFrame(columns=COLUMNS)
    shift = dict(zip(offsets["rank"], offsets["offset_us"])) if not offsets.empty else {}
    fix = pd.Series({r: shift.get(r, 0.0) if shift.get(r) == shift.get(r) else 0.0 for r in dur.columns})
    start, launch = start.sub(fix, axis=1), launch.sub(fix, axis=1)
    late = dur.idxmin(axis=1)
    rows = []
    for s in skew.itertuples():
        peer = s.waits_for
        if peer is None or peer != peer or s.wait_ms_per_step <= 0:
            continue
        peer, r = int(peer), int(s.rank)
        sel = (info["op"] == s.op) & (late == peer) & dur[r].notna()
        if not sel.any():
            continue
        queue = start.loc[sel, peer] - launch.loc[sel, peer]
        rows.append({
            "rank": r, "op": s.op, "late_rank": peer, "matched": int(sel.sum()),
            "start_late_ms": float((start.loc[sel, peer] - start.loc[sel, r]).median()) / 1e3,
            "launch_late_ms": float((launch.loc[sel, peer] - launch.loc[sel, r]).median()) / 1e3,
            "queue_ms": float(queue.median()) / 1e3,
            "queue_busy_ms": float(busy.loc[sel, peer].astype(float).median()) / 1e3,
            "queue_phase": _mode(qphase.loc[sel, peer]), "queue_kernel": _mode(qkernel.loc[sel, peer]),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def explain(row: pd.Series) -> str:
    """One clause for a skew finding: where the late rank spent the difference."""
    peer, late, launch = int(row["late_rank"]), row["start_late_ms"], row["launch_late_ms"]
    if launch != launch:
        return f"rank {peer} starts them {late:.1f} ms later (its launches are not in the trace)"
    head = f"rank {peer} starts them {late:.1f} ms later"
    if launch >= 0.5 * late:
        return f"{head}: its CPU launched them {launch:.1f} ms later (the host was behind)"
    queue, busy = row["queue_ms"], row["queue_busy_ms"]
    if busy < 0.5 * queue:
        return (f"{head}: launched {launch:.1f} ms later, then waited {queue:.1f} ms in its GPU queue with the GPU "
                "mostly idle (a stream or event dependency)")
    where = f", most of it {row['queue_phase']}'s kernels ({row['queue_kernel']})" if row["queue_phase"] else ""
    return (f"{head}: launched {launch:.1f} ms later, then queued {queue:.1f} ms on its GPU behind "
            f"{busy:.1f} ms of earlier work{where}")
