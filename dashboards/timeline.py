"""One rank's trace -> lanes of coloured segments for one profiled step, and comm overlap per phase.

Built from the trace's ``golfprof.traces.derived.view``, the per-rank view ``golfprof analyze`` and
``golfprof diff`` read, so a kernel gets the same phase and step here as there, and the overlap the
same figures. A full-preset step launches thousands of kernels, far more than a chart has pixels, so
consecutive kernels of one phase on one stream are drawn as one segment when the GPU gap between them
is below a pixel's worth of the step (``MERGE_FRACTION``); communication kernels are never merged.
All functions are pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from golfprof.traces import attribute, clocks, derived, events, metrics
from golfprof.traces.load import Trace

MERGE_FRACTION = 1 / 3000  # a gap under this share of the window is invisible at chart width
NO_PHASE = derived.NO_PHASE
EXPOSED = "exposed communication"
COLLECTIVE_RANGE_RE = re.compile(r"^(gloo|nccl|mpi|ucc):")  # CPU-side collectives (gloo runs them on threads)
SEGMENT_COLUMNS = ["lane", "kind", "phase", "step", "start_ms", "end_ms", "busy_ms", "items", "label"]


@dataclass
class RankTrace:
    """Everything the charts need from one rank's trace, with times in µs as in the trace."""

    rank: int
    steps: pd.DataFrame  # step, ts, end (CPU ProfilerStep ranges; one whole-trace row if none)
    ranges: pd.DataFrame  # name, thread, ts, end, tid: phase ranges inside the profiled steps
    collectives_cpu: pd.DataFrame  # name, thread, ts, end, tid: gloo/nccl ranges (CPU-only traces)
    gpu: pd.DataFrame  # name, ts, end, dur, stream, phase, step, in_step, cls, op
    phase_order: list[str]
    view: derived.RankView  # what the frames above were taken from: the one view analyze and diff read

    @property
    def base_us(self) -> float:
        """The trace's baseTimeNanoseconds in µs: its times + base_us are unix time."""
        return self.view.base_us

    @property
    def comm_seq(self) -> pd.DataFrame:
        """comm.sequence: what matches each collective across ranks."""
        return self.view.comm_seq


@dataclass
class RankTimeline:
    rank: int
    step: int
    cpu_step_ms: float
    gpu_end_ms: float | None  # when the step's last kernel ended, from the step's CPU start
    end_ms: float  # where the drawn window ends, from the origin
    segments: pd.DataFrame  # SEGMENT_COLUMNS; times in ms from the origin


def _step_numbers(steps: pd.DataFrame, t: np.ndarray) -> np.ndarray:
    """Profiler step number holding each time, -1 outside every step."""
    i = events.step_of(steps, t)
    return np.where(i >= 0, steps["step"].to_numpy()[np.clip(i, 0, None)], -1) if len(steps) else np.full(len(t), -1)


def load_rank(trace: Trace, rank: int, pattern: re.Pattern[str]) -> RankTrace:
    """Every GPU row with the phase that launched it and the profiled step it belongs to.

    All of it comes from the trace's ``golfprof.traces.derived.view`` (cached on the trace), the one
    ``golfprof analyze`` and ``golfprof diff`` read; work queued before the window is in no step
    (``in_step`` False) and is drawn with step -1.
    """
    v = derived.view(trace, pattern)
    w, phased = v.work, v.phases
    st = w.steps
    if st.empty:  # a trace without ProfilerStep ranges: treat it as one step
        st = pd.DataFrame({"step": [-1], "ts": [w.lo], "end": [w.hi]})
    g = w.gpu
    gpu = pd.DataFrame({
        "name": g["name"].astype(str).to_numpy(), "ts": g["ts"].to_numpy(), "end": g["end"].to_numpy(),
        "dur": g["dur"].to_numpy(), "stream": g["stream"].to_numpy(), "phase": phased.phase,
        "step": g["step"].to_numpy(), "in_step": w.in_steps,
        "cls": g["cls"].to_numpy(), "op": g["op"].fillna("").to_numpy(),
    })
    ranges = phased.ranges
    order = list(dict.fromkeys(ranges.sort_values("ts", kind="stable")["name"]))
    return RankTrace(rank=rank, steps=st, ranges=ranges,
                     collectives_cpu=derived.cpu_ranges(trace.events, COLLECTIVE_RANGE_RE), gpu=gpu,
                     phase_order=order, view=v)


def clock_shifts(ranks: list[RankTrace]) -> dict[int, float]:
    """Per rank, what puts its times on one clock with the others': its base time less its measured clock
    offset (``golfprof.traces.clocks``), so that ranks are drawn as they ran even when their clocks differ."""
    off = clocks.offsets({rt.rank: rt.comm_seq for rt in ranks})
    measured = dict(zip(off["rank"], off["offset_us"])) if not off.empty else {}
    return {rt.rank: rt.base_us - (measured.get(rt.rank, 0.0) if measured.get(rt.rank) == measured.get(rt.rank)
                                   else 0.0) for rt in ranks}


def pick_step(rt: RankTrace) -> int:
    """The profiled step of median CPU length: a typical step, not the first (allocator, compile) one."""
    d = (rt.steps["end"] - rt.steps["ts"]).to_numpy()
    return int(rt.steps["step"].to_numpy()[np.argsort(d, kind="stable")[(len(d) - 1) // 2]])


def difference(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A \\ B for merged interval sets: where communication runs and no compute kernel does."""
    if len(a[0]) == 0 or len(b[0]) == 0:
        return a
    t = np.concatenate([a[0], a[1], b[0], b[1]])
    d = np.concatenate([np.full(len(a[0]), 1), np.full(len(a[0]), -1), np.full(len(b[0]), 2), np.full(len(b[0]), -2)])
    order = np.argsort(t, kind="stable")
    t, run = t[order], np.cumsum(d[order])
    inside = run[:-1] == 1
    s, e = t[:-1][inside], t[1:][inside]
    keep = e > s
    return metrics.merge(s[keep], e[keep])


def _flatten(ranges: pd.DataFrame, lo: float, hi: float) -> pd.DataFrame:
    """One thread's nested ranges -> the innermost open range over time, clipped to [lo, hi)."""
    bounds, top = attribute.open_range_map(ranges["ts"].to_numpy(), ranges["end"].to_numpy())
    if len(bounds) == 0:
        return pd.DataFrame(columns=["name", "ts", "end"])
    ends = np.r_[bounds[1:], bounds[-1]]
    keep = (top >= 0) & (ends > bounds)
    out = pd.DataFrame({"name": ranges["name"].to_numpy()[top[keep]], "ts": np.clip(bounds[keep], lo, hi),
                        "end": np.clip(ends[keep], lo, hi)})
    return out[out["end"] > out["ts"]]


def _merge_runs(k: pd.DataFrame, tol: float) -> pd.DataFrame:
    """Consecutive kernels of one (phase, step) on a stream with gaps under ``tol`` -> one segment."""
    k = k.sort_values("ts", kind="stable")
    ts, end = k["ts"].to_numpy(), np.maximum.accumulate(k["end"].to_numpy())
    key = k["phase"].astype(str).to_numpy() + "\x00" + k["step"].astype(str).to_numpy()
    new = np.ones(len(k), bool)
    new[1:] = (key[1:] != key[:-1]) | (ts[1:] - end[:-1] > tol)
    seg = np.cumsum(new) - 1
    g = k.assign(seg=seg, run_end=end).groupby("seg", sort=True)
    top = k.assign(seg=seg).groupby(["seg", "name"]).dur.sum().reset_index()
    top = top.sort_values(["seg", "dur"], ascending=[True, False]).drop_duplicates("seg").set_index("seg")
    return pd.DataFrame({
        "phase": g["phase"].first(), "step": g["step"].first(), "ts": g["ts"].min(), "end": g["run_end"].max(),
        "busy": g["dur"].sum(), "items": g.size(), "label": top["name"],
    }).reset_index(drop=True)


def lane_kind(stream_classes: np.ndarray) -> str:
    """A stream is a communication stream when most of its rows are NCCL kernels."""
    return "comm" if (stream_classes == metrics.COMM).mean() > 0.5 else "compute"


def step_start(rt: RankTrace, step: int) -> float:
    """The step's CPU start (µs); KeyError when this rank did not profile it."""
    row = rt.steps[rt.steps["step"] == step]
    if row.empty:
        raise KeyError(step)
    return float(row["ts"].iloc[0])


def step_timeline(rt: RankTrace, step: int, origin_us: float | None = None) -> RankTimeline:
    """Lanes for one step: CPU threads (innermost phase), GPU streams, and exposed communication.

    The window runs from the step's CPU start to the later of its CPU end and its last kernel's
    end, and shows everything that ran in it (work of a neighbouring step keeps its step number).
    Times count from ``origin_us`` (default the step's start): one origin for all ranks of a host
    keeps their collectives lined up as they ran. Raises KeyError when ``step`` was not profiled.
    """
    t0 = step_start(rt, step)
    cpu_end = float(rt.steps.loc[rt.steps["step"] == step, "end"].iloc[0])
    origin = t0 if origin_us is None else origin_us
    g = rt.gpu
    own = g[g["step"] == step]
    t1 = max(cpu_end, float(own["end"].max()) if len(own) else cpu_end)
    tol = (t1 - t0) * MERGE_FRACTION
    parts: list[pd.DataFrame] = []

    def add(lane: str, kind: str, df: pd.DataFrame, busy: np.ndarray | None = None) -> None:
        ts, end = np.clip(df["ts"].to_numpy(), t0, t1), np.clip(df["end"].to_numpy(), t0, t1)
        parts.append(pd.DataFrame({
            "lane": lane, "kind": kind, "phase": df["phase"].to_numpy(), "step": df["step"].to_numpy(),
            "start_ms": (ts - origin) / 1e3, "end_ms": (end - origin) / 1e3,
            "busy_ms": (end - ts) / 1e3 if busy is None else busy / 1e3, "items": df["items"].to_numpy(),
            "label": df["label"].to_numpy(),
        }))

    def step_of(t: np.ndarray) -> np.ndarray:
        return _step_numbers(rt.steps, t)

    live = rt.ranges[(rt.ranges["end"] > t0) & (rt.ranges["ts"] < t1)]
    for _, r in live.groupby("thread", sort=False):
        flat = _flatten(r, t0, t1)
        flat = flat.assign(phase=flat["name"], step=step_of(flat["ts"].to_numpy()), items=1, label=flat["name"])
        add(f"r{rt.rank} · CPU thread {r['tid'].iloc[0]}", "cpu", flat)
    if g.empty:
        coll = rt.collectives_cpu[(rt.collectives_cpu["end"] > t0) & (rt.collectives_cpu["ts"] < t1)]
        for _, c in coll.groupby("thread", sort=False):
            c = c.assign(phase=c["name"], step=step_of(c["ts"].to_numpy()), items=1, label=c["name"])
            add(f"r{rt.rank} · CPU thread {c['tid'].iloc[0]} (collectives)", "comm", c)
    live_g = g[(g["end"] > t0) & (g["ts"] < t1)]
    comm_k = live_g[live_g["cls"] == metrics.COMM]
    by_stream = sorted(live_g.groupby("stream"), key=lambda kv: (lane_kind(kv[1]["cls"].to_numpy()) == "comm", kv[0]))
    for stream, k in by_stream:  # compute streams first, then communication
        kind = lane_kind(k["cls"].to_numpy())
        lane = f"r{rt.rank} · GPU stream {stream} ({kind})"
        if kind == "comm":
            kk = k.assign(items=1, label=np.where(k["op"] != "", k["op"], k["name"]))
            add(lane, "comm", kk, busy=kk["dur"].to_numpy())
        else:
            runs = _merge_runs(k, tol)
            add(lane, "compute", runs, busy=runs["busy"].to_numpy())
    if not comm_k.empty:
        exposed = difference(metrics.merge(comm_k["ts"].to_numpy(), comm_k["end"].to_numpy()), rt.view.compute)
        e = pd.DataFrame({"ts": exposed[0], "end": exposed[1]})
        e = e.assign(phase=EXPOSED, step=step_of(e["ts"].to_numpy()), items=1,
                     label="no compute kernel running")
        add(f"r{rt.rank} · exposed comm", "exposed", e)
    segments = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SEGMENT_COLUMNS)
    gpu_end = (float(own["end"].max()) - t0) / 1e3 if len(own) else None
    return RankTimeline(rank=rt.rank, step=step, cpu_step_ms=(cpu_end - t0) / 1e3, gpu_end_ms=gpu_end,
                        end_ms=(t1 - origin) / 1e3,
                        segments=segments[segments["end_ms"] > segments["start_ms"]].reset_index(drop=True))


def comm_overlap(rt: RankTrace) -> pd.DataFrame:
    """Per launching phase: communication ms per profiled step, hidden under compute or exposed.

    ``golfprof analyze``'s figures (``RankView.comm_per_step``: union of the phase's NCCL kernels; exposed =
    no compute kernel on the rank running; every profiled step in the divisor), but per innermost phase
    so the rows add up; the row ``all phases`` is the union over every communication kernel of the
    steps, analyze's comm_ms and exposed_comm_ms.
    """
    cols = ["rank", "phase", "kernels", "comm_ms", "hidden_ms", "exposed_ms", "exposed_pct"]
    g = rt.gpu[rt.gpu["in_step"].to_numpy()]
    ck = g[g["cls"] == metrics.COMM]
    if ck.empty:
        return pd.DataFrame(columns=cols)
    n = rt.view.work.n_steps
    order = {p: i for i, p in enumerate(rt.phase_order)}
    rows = sorted(ck.groupby("phase"), key=lambda kv: order.get(kv[0], len(order))) + [("all phases", ck)]
    out = []
    for phase, k in rows:
        total, exp = rt.view.comm_per_step(k)
        out.append({"rank": rt.rank, "phase": phase, "kernels": len(k) / n, "comm_ms": total,
                    "hidden_ms": total - exp, "exposed_ms": exp,
                    "exposed_pct": 100 * exp / total if total > 0 else np.nan})
    return pd.DataFrame(out, columns=cols)
