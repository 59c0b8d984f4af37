"""Compose the analyses into one summary per rank and one per run (all pure, no I/O)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import attribute, comm, events, metrics
from .load import Trace
from .phase_table import SYNC_RE, phase_table


@dataclass
class RankSummary:
    rank: int
    path: Path
    window: int
    steps: int
    step_numbers: list[int]
    step_ms: float | None
    has_gpu: bool
    gpu_busy_pct: float | None
    hta_step_names: frozenset[str]
    hta_variants: dict[bool, metrics.HtaFigures | None]  # keyed by "drop the last step"
    comm_ms: float | None  # per step, union of communication kernels
    exposed_comm_ms: float | None
    unattributed_gpu_ms: float | None  # GPU work of the steps launched outside every phase
    phases: pd.DataFrame
    collectives: pd.DataFrame
    comm_seq: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    hta: metrics.HtaFigures | None = None  # the variant HTA picks, set by combine()


@dataclass
class RunSummary:
    phase_regex: str
    ranks: list[RankSummary]
    skew: pd.DataFrame


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


def summarize_rank(trace: Trace, rank: int, pattern: re.Pattern[str], window: int = 0, *,
                   steps: pd.DataFrame | None = None, gpu: pd.DataFrame | None = None) -> RankSummary:
    """Everything golfprof reports about one rank's trace; small, so the trace can be dropped after.

    ``steps`` (``events.steps``) and ``gpu`` (``attribute.launched_work``) are derived here unless a caller that
    also needs them (the kernel table of ``golfprof diff``) passes its own, so a trace is walked once.
    """
    ev = trace.events
    notes: list[str] = []
    st = events.steps(ev) if steps is None else steps
    n_steps = max(len(st), 1)
    if st.empty:
        notes.append("no ProfilerStep ranges: figures are for the whole trace, not per step")
        lo, hi = (float(ev["ts"].min()), float((ev["ts"] + ev["dur"]).max())) if len(ev) else (0.0, 0.0)
    else:
        lo, hi = float(st["ts"].min()), float(st["end"].max())

    ranges = events.cpu_ranges(ev, pattern)
    if not st.empty:
        ranges = ranges[events.step_of(st, ranges["ts"].to_numpy()) >= 0].reset_index(drop=True)
    if ranges.empty:
        notes.append(f"no CPU ranges match --phases {pattern.pattern!r}")
    parent = attribute.parents(ranges)

    g = attribute.launched_work(ev) if gpu is None else gpu
    has_gpu = not g.empty
    if not has_gpu:
        notes.append("no GPU events (CPU-only trace): GPU figures are absent")
    has_launch = g["launch_thread"].to_numpy() >= 0
    g_range = np.full(len(g), -1, np.int64)
    g_range[has_launch] = attribute.innermost(
        ranges, g["launch_thread"].to_numpy()[has_launch], g["launch_ts"].to_numpy()[has_launch]
    )
    g_cls = metrics.kernel_class(g["name"])
    comp = g_cls == metrics.COMPUTE
    compute = metrics.merge(g["ts"].to_numpy()[comp], g["end"].to_numpy()[comp])
    g_step = events.step_of(st, attribute.launch_time(g)) if not st.empty else np.zeros(len(g), np.int64)
    in_steps = g_step >= 0

    sync_m = events.cat_mask(ev, events.LAUNCH_CATS) & events.name_mask(ev["name"], SYNC_RE)
    sync = ev.loc[sync_m, ["ts", "dur"]]
    sync_range = attribute.innermost(ranges, events.thread_key(ev)[sync_m], sync["ts"].to_numpy())

    gap = np.where(in_steps, metrics.gaps_before(g["ts"].to_numpy(), g["end"].to_numpy(), lo), 0.0)
    phases = phase_table(ranges, parent, g, g_range, g_cls, gap, sync, sync_range, compute, n_steps, has_gpu)

    ck = comm.comm_kernels(g, g_cls, trace.comm_args, _param_rows(ev, trace.comm_args, g))
    ck_in = in_steps[g_cls == metrics.COMM]
    ck = ck[ck_in]
    step_no = (st["step"].to_numpy()[g_step[g_cls == metrics.COMM][ck_in]] if not st.empty
               else np.zeros(len(ck), np.int64))
    comm_ms = exposed = unattributed = None
    if has_gpu:
        per = 1e3 * n_steps
        merged_comm = metrics.merge(ck["ts"].to_numpy(), ck["end"].to_numpy())
        comm_ms = metrics.length(merged_comm) / per
        exposed = (metrics.length(merged_comm) - metrics.intersection(merged_comm, compute)) / per
        loose = in_steps & (g_range < 0)
        unattributed = float(g["dur"].to_numpy()[loose].sum()) / per
    return RankSummary(
        rank=rank,
        path=trace.path,
        window=window,
        steps=len(st),
        step_numbers=st["step"].tolist(),
        step_ms=float(np.median(st["end"] - st["ts"])) / 1e3 if not st.empty else None,
        has_gpu=has_gpu,
        gpu_busy_pct=metrics.gpu_busy_pct(g, lo, hi) if has_gpu else None,
        hta_step_names=frozenset(metrics.hta_step_names(ev)),
        hta_variants={d: metrics.hta_figures(ev, trace.ts_is_float, d) if has_gpu else None for d in (False, True)},
        comm_ms=comm_ms,
        exposed_comm_ms=exposed,
        unattributed_gpu_ms=unattributed,
        phases=phases,
        collectives=comm.collectives(ck, compute, n_steps),
        comm_seq=comm.sequence(ck, step_no),
        notes=notes,
    )


def combine(ranks: list[RankSummary], pattern: re.Pattern[str]) -> RunSummary:
    """Join the ranks of one profiling window: HTA's step filter (decided over all ranks) and skew."""
    step_names: set[str] = set()
    for r in ranks:
        step_names |= r.hta_step_names
    drop_last = len(step_names) >= 2
    ranks = sorted((dataclasses.replace(r, hta=r.hta_variants[drop_last]) for r in ranks), key=lambda r: r.rank)
    skew = comm.rank_skew({r.rank: r.comm_seq for r in ranks})
    return RunSummary(phase_regex=pattern.pattern, ranks=ranks, skew=skew)
