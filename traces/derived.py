"""A loaded trace's derived columns, computed once and shared by analyze, diff and the dashboard.

HTA adds its derived columns (iteration, stream, ...) when it parses a trace. golfprof does the same
on first use: which profiled step each piece of GPU work belongs to, what class of kernel it is,
what collective it runs and which phase launched it are answered here once per trace (the phase once
per phase regex) and cached on the :class:`~golfprof.traces.load.Trace`, so ``golfprof analyze``'s
summary, ``golfprof diff``'s kernel table and the dashboard's timeline cannot disagree about a kernel
and none of them walks the trace again.

Work whose launch is not in the trace was queued before profiling began (the GPU runs behind the
CPU, as a compiled trainer's does): it belongs to no profiled step however far into the window it
runs (``step_idx`` -1, ``before`` True), and is reported apart. Only a trace that records no launch
at all falls back to giving work to the step it ran in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import attribute, clocks, comm, events, lateness, metrics
from .load import Trace

NO_PHASE = "(no phase)"
COMM_COLUMNS = ["op", "dtype", "algo", "proto", "bytes", "seq", "pg"]


@dataclass(frozen=True)
class Work:
    """Pattern-independent columns of one trace."""

    steps: pd.DataFrame  # events.steps: step, ts, end (empty: no ProfilerStep ranges)
    lo: float  # the profiled window: first step start .. last step end (whole trace without steps)
    hi: float
    gpu: pd.DataFrame  # attribute.launched_work + cls, step_idx, step, before, and COMM_COLUMNS (comm rows)
    launches_recorded: bool  # False: no GPU row's launch is in the trace, work goes to the step it ran in

    @property
    def n_steps(self) -> int:
        return max(len(self.steps), 1)

    @property
    def in_steps(self) -> np.ndarray:
        return self.gpu["step_idx"].to_numpy() >= 0


@dataclass(frozen=True)
class Phases:
    """The phase columns of one trace for one phase regex."""

    ranges: pd.DataFrame  # name, thread, ts, end, tid: matching CPU ranges inside the profiled steps
    parent: np.ndarray  # attribute.parents(ranges)
    gpu_range: np.ndarray  # per Work.gpu row: the innermost range that launched it, -1 for none
    phase: np.ndarray  # per Work.gpu row: that range's name, NO_PHASE for none


def _param_rows(ev: pd.DataFrame, comm_args: pd.DataFrame, g: pd.DataFrame) -> np.ndarray:
    """For each GPU row, the record_param_comms event (with collective args) around its launch."""
    out = np.full(len(g), -1, np.int64)
    m = ev["name"].to_numpy() == "record_param_comms"
    m &= np.isin(np.arange(len(ev)), comm_args.index.to_numpy())
    has = g["launch_thread"].to_numpy() >= 0
    if not m.any() or not has.any():
        return out
    rp = ev.loc[m, ["ts", "dur"]]
    ranges = pd.DataFrame({"name": "record_param_comms", "thread": events.thread_key(ev)[m],
                           "ts": rp["ts"].to_numpy(), "end": (rp["ts"] + rp["dur"]).to_numpy()})
    hit = attribute.innermost(ranges, g["launch_thread"].to_numpy()[has], g["launch_ts"].to_numpy()[has])
    out[has] = np.where(hit >= 0, rp.index.to_numpy()[np.clip(hit, 0, None)], -1)
    return out


def _window(ev: pd.DataFrame, st: pd.DataFrame) -> tuple[float, float]:
    if not st.empty:
        return float(st["ts"].min()), float(st["end"].max())
    return (float(ev["ts"].min()), float((ev["ts"] + ev["dur"]).max())) if len(ev) else (0.0, 0.0)


def event_classes(trace: Trace) -> np.ndarray:
    """``metrics.kernel_class`` of every event row, cached on the trace (HTA's figures and the GPU work share it)."""
    hit = trace.derived.get("classes")
    if hit is None:
        hit = trace.derived["classes"] = metrics.kernel_class(trace.events["name"])
    return hit


def compute_work(trace: Trace) -> Work:
    """Every GPU row with its launch, kernel class, profiled step and collective (uncached: see :func:`work`)."""
    ev = trace.events
    st = events.steps(ev)
    g = attribute.launched_work(ev)
    launched = g["launch_thread"].to_numpy() >= 0
    recorded = bool(launched.any()) or g.empty
    cls = event_classes(trace)[g.index.to_numpy()]
    before = ~launched & recorded
    if st.empty:  # the whole trace is one window
        step_idx = np.zeros(len(g), np.int64)
        step_no = np.full(len(g), -1)
    else:
        step_idx = events.step_of(st, attribute.launch_time(g))
        step_no = st["step"].to_numpy()[np.clip(step_idx, 0, None)]
    step_idx = np.where(before, -1, step_idx)
    g = g.assign(cls=cls, step_idx=step_idx, step=np.where(step_idx >= 0, step_no, -1), before=before)
    if (cls == metrics.COMM).any():
        ck = comm.comm_kernels(g, cls, trace.comm_args, _param_rows(ev, trace.comm_args, g))
        g = g.assign(**{c: pd.Series(ck[c].to_numpy(), index=ck.index, dtype=object).reindex(g.index)
                        for c in COMM_COLUMNS})
        g["bytes"] = g["bytes"].astype(float)
    else:  # no collective: the columns, empty
        g = g.assign(**{c: np.full(len(g), None, dtype=object) for c in COMM_COLUMNS}).assign(bytes=np.nan)
    lo, hi = _window(ev, st)
    return Work(steps=st, lo=lo, hi=hi, gpu=g, launches_recorded=recorded)


def work(trace: Trace) -> Work:
    """:func:`compute_work`, cached on the trace."""
    hit = trace.derived.get("work")
    if hit is None:
        hit = trace.derived["work"] = compute_work(trace)
    return hit


def cpu_ranges(ev: pd.DataFrame, pattern: re.Pattern[str]) -> pd.DataFrame:
    """CPU ranges whose name matches ``pattern`` (name, thread, ts, end), with their thread id as text (tid)."""
    m = events.cat_mask(ev, events.RANGE_CATS) & events.name_mask(ev["name"], pattern)
    return events.cpu_ranges(ev, pattern).assign(tid=ev.loc[m, "tid"].astype(str).to_numpy())


def compute_phases(trace: Trace, pattern: re.Pattern[str]) -> Phases:
    """The phase ranges inside the profiled steps and the phase that launched each GPU row (uncached)."""
    w = work(trace)
    ranges = cpu_ranges(trace.events, pattern)
    if not w.steps.empty:
        ranges = ranges[events.step_of(w.steps, ranges["ts"].to_numpy()) >= 0].reset_index(drop=True)
    g = w.gpu
    has = g["launch_thread"].to_numpy() >= 0
    row = np.full(len(g), -1, np.int64)
    row[has] = attribute.innermost(ranges, g["launch_thread"].to_numpy()[has], g["launch_ts"].to_numpy()[has])
    names = ranges["name"].to_numpy()
    phase = np.where(row >= 0, names[np.clip(row, 0, None)] if len(names) else NO_PHASE, NO_PHASE)
    return Phases(ranges=ranges, parent=attribute.parents(ranges), gpu_range=row, phase=phase)


def phases(trace: Trace, pattern: re.Pattern[str]) -> Phases:
    """:func:`compute_phases`, cached on the trace per regex."""
    key = ("phases", pattern.pattern, pattern.flags)
    hit = trace.derived.get(key)
    if hit is None:
        hit = trace.derived[key] = compute_phases(trace, pattern)
    return hit


def comm_rows(w: Work) -> pd.DataFrame:
    """The communication rows of the profiled steps, with their collective columns."""
    g = w.gpu
    return g[(g["cls"].to_numpy() == metrics.COMM) & w.in_steps]


@dataclass(frozen=True)
class RankView:
    """One rank's trace for one phase regex, as analyze, diff and the dashboard all read it.

    Built once per trace and regex (:func:`view`); the summary, the kernel table, the timeline and
    the overlap chart take their steps, phases, communication rows, compute intervals and collective
    sequence from here, so that none of them can count a kernel, a step or a collective differently.
    """

    work: Work
    phases: Phases
    comm: pd.DataFrame  # comm_rows: the communication kernels of the profiled steps
    compute: tuple[np.ndarray, np.ndarray]  # merged intervals of every compute kernel of the trace
    comm_seq: pd.DataFrame  # comm.sequence with lateness.queue_before's columns: collectives matched across ranks
    base_us: float  # the trace's baseTimeNanoseconds in µs: its times + base_us are unix time

    def comm_per_step(self, rows: pd.DataFrame | None = None) -> tuple[float, float]:
        """(communication ms, exposed ms) per profiled step of ``rows`` (default: every communication kernel
        of the steps): the union of their kernels, and the part of it with no compute kernel running.

        The divisor is every profiled step (``Work.n_steps``), a step that launched no GPU work included.
        """
        k = self.comm if rows is None else rows
        per = 1e3 * self.work.n_steps
        ts, end = k["ts"].to_numpy(), k["end"].to_numpy()
        return metrics.length(metrics.merge(ts, end)) / per, comm.exposed_length(ts, end, self.compute) / per


def compute_view(trace: Trace, pattern: re.Pattern[str]) -> RankView:
    """:class:`RankView` of a trace (uncached: see :func:`view`)."""
    w = work(trace)
    phased = phases(trace, pattern)
    g = w.gpu
    comp = g["cls"].to_numpy() == metrics.COMPUTE
    ck = comm_rows(w)
    base = clocks.base_us(trace.meta)
    seq = comm.sequence(ck.join(lateness.queue_before(ck, g, phased.phase)), ck["step"].to_numpy(), base)
    return RankView(work=w, phases=phased, comm=ck, compute=metrics.merge(g["ts"].to_numpy()[comp],
                                                                          g["end"].to_numpy()[comp]),
                    comm_seq=seq, base_us=base)


def view(trace: Trace, pattern: re.Pattern[str]) -> RankView:
    """:func:`compute_view`, cached on the trace per regex."""
    key = ("view", pattern.pattern, pattern.flags)
    hit = trace.derived.get(key)
    if hit is None:
        hit = trace.derived[key] = compute_view(trace, pattern)
    return hit
