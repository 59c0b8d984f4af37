"""Compose the analyses into one summary per rank and one per run (all pure, no I/O)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import attribute, clocks, comm, derived, display, events, lateness, metrics
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
    hta_cpu_compute: tuple[int, float]  # CPU rows HTA counts as GPU compute: count, µs (metrics.hta_cpu_compute)
    comm_ms: float | None  # per step, union of communication kernels
    exposed_comm_ms: float | None
    unattributed_gpu_ms: float | None  # GPU work of the steps launched outside every phase
    phases: pd.DataFrame
    collectives: pd.DataFrame
    comm_seq: pd.DataFrame
    before: pd.DataFrame  # before_window: GPU work queued before the profiled window, per kernel
    notes: list[str] = field(default_factory=list)
    hta: metrics.HtaFigures | None = None  # the variant HTA picks, set by combine()
    rank_known: bool = True  # False: a lone trace that records no rank (``rank`` is 0 for want of one)
    start_us: float = 0.0  # the trace's first event (its own clock) and its baseTimeNanoseconds in µs:
    base_us: float = 0.0  # what a merged trace needs to put every rank on one clock
    window_check: dict[str, Any] | None = None  # typical.window_vs_timers, when the run's step timers are at hand
    recorded: pd.DataFrame = field(default_factory=pd.DataFrame)  # recorded.per_step: collectives issued (any backend)

    @property
    def overlap_pct(self) -> float | None:
        """golfprof's compute/communication overlap: share of the steps' communication time (union of
        their NCCL kernels) during which a compute kernel runs; GPU kernels only, every profiled step."""
        if not self.comm_ms or self.exposed_comm_ms is None:
            return None
        return 100.0 * (self.comm_ms - self.exposed_comm_ms) / self.comm_ms


@dataclass
class RunSummary:
    phase_regex: str
    ranks: list[RankSummary]
    skew: pd.DataFrame
    clocks: pd.DataFrame = field(default_factory=pd.DataFrame)  # clocks.offsets: each rank's clock vs the lowest
    late: pd.DataFrame = field(default_factory=pd.DataFrame)  # lateness.late_reasons: why the waited-for rank is late
    warnings: list[str] = field(default_factory=list)  # the window as a whole (unequal_steps)


def before_window(w: derived.Work) -> pd.DataFrame:
    """GPU work queued before the profiled window (its launch is not in the trace), per kernel name.

    Columns kernel, cls, op, count, ms (totals over the trace, not per step), largest first: the GPU was
    still running an earlier step's work, which is no profiled step's.
    """
    b = w.gpu[w.gpu["before"].to_numpy()]
    cols = ["kernel", "cls", "op", "count", "ms"]
    if b.empty:
        return pd.DataFrame(columns=cols)
    codes = b["name"].cat.codes.to_numpy()  # one name, one class and one op: group by the name's code
    used, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    out = pd.DataFrame({"kernel": b["name"].cat.categories[used].to_numpy(), "cls": b["cls"].to_numpy()[first],
                        "op": b["op"].fillna("").to_numpy()[first], "count": np.bincount(inverse),
                        "ms": np.bincount(inverse, weights=b["dur"].to_numpy()) / 1e3})
    return out.sort_values("ms", ascending=False, kind="stable").reset_index(drop=True)[cols]


def _before_note(before: pd.DataFrame) -> str | None:
    """One line on work from before the window: how much, and its largest kernel."""
    if before.empty:
        return None
    top = before.iloc[0]
    n_comm = int(before.loc[before["cls"] == metrics.COMM, "count"].sum())
    comm_part = f", {n_comm} of them collectives" if n_comm else ""
    name = top["op"] or str(top["kernel"])
    name = name if len(name) <= 60 else name[:59] + "…"
    return (f"{before['ms'].sum():.2f} ms of GPU work ({int(before['count'].sum())} kernels{comm_part}) was launched "
            f"before the profiled window (the GPU ran behind the CPU): in no step's figures; largest {name} "
            f"({top['ms']:.2f} ms)")


def _no_phases_note(ev: pd.DataFrame, st: pd.DataFrame, pattern: re.Pattern[str]) -> str:
    """No range matched: name the trace's own annotations and the --phases that selects them."""
    note = f"no CPU ranges match --phases {pattern.pattern!r}"
    found = display.suggest_phases(ev, st)
    if found is None:
        return note
    names, regex = found
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return f"{note}; the trace annotates {shown}: select them with --phases '{regex}'"


def summarize_rank(trace: Trace, rank: int, pattern: re.Pattern[str], window: int = 0,
                   rank_known: bool = True) -> RankSummary:
    """Everything golfprof reports about one rank's trace; small, so the trace can be dropped after.

    Steps, launches, kernel classes and phases come from ``derived`` (cached on the trace), so the
    kernel table of ``golfprof diff`` and the dashboard's timeline read the same ones.
    """
    ev = trace.events
    notes: list[str] = []
    v = derived.view(trace, pattern)
    w, phased = v.work, v.phases
    st, g = w.steps, w.gpu
    n_steps = w.n_steps
    if st.empty:
        notes.append("no ProfilerStep ranges: figures are for the whole trace, not per step")
    lo, hi = w.lo, w.hi
    ranges = phased.ranges
    if ranges.empty:
        notes.append(_no_phases_note(ev, st, pattern))

    has_gpu = not g.empty
    if not has_gpu:
        notes.append("no GPU events (CPU-only trace): GPU figures are absent")
    elif not w.launches_recorded:
        notes.append("no kernel launch is in the trace: GPU work is given to the step it ran in")
    g_range = phased.gpu_range
    g_cls = g["cls"].to_numpy()
    compute = v.compute
    in_steps = w.in_steps

    sync_m = events.cat_mask(ev, events.LAUNCH_CATS) & events.name_mask(ev["name"], SYNC_RE)
    sync = ev.loc[sync_m, ["ts", "dur"]]
    sync_range = attribute.innermost(ranges, events.thread_key(ev)[sync_m], sync["ts"].to_numpy())

    gap = np.where(in_steps, metrics.gaps_before(g["ts"].to_numpy(), g["end"].to_numpy(), lo), 0.0)
    phases = phase_table(ranges, phased.parent, g, g_range, g_cls, gap, sync, sync_range, compute, n_steps, has_gpu)

    ck = v.comm
    comm_ms = exposed = unattributed = None
    if has_gpu:
        comm_ms, exposed = v.comm_per_step()
        loose = in_steps & (g_range < 0)
        unattributed = float(g["dur"].to_numpy()[loose].sum()) / (1e3 * n_steps)
    before = before_window(w)
    note = _before_note(before)
    if note:
        notes.append(note)
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
        hta_variants={d: metrics.hta_figures(ev, trace.ts_is_float, d, derived.event_classes(trace)) if has_gpu
                      else None for d in (False, True)},
        hta_cpu_compute=metrics.hta_cpu_compute(ev, derived.event_classes(trace)),
        comm_ms=comm_ms,
        exposed_comm_ms=exposed,
        unattributed_gpu_ms=unattributed,
        phases=phases,
        collectives=comm.collectives(ck, compute, n_steps),
        comm_seq=v.comm_seq,
        before=before,
        notes=notes,
        rank_known=rank_known,
        start_us=float(ev["ts"].min()) if len(ev) else 0.0,
        base_us=v.base_us,
    )


OVERLAP_NOTE_PP = 1.0  # golfprof's and HTA's overlap differ by more than this: say why


def overlap_note(r: RankSummary, drop_last: bool) -> str | None:
    """Why HTA's overlap (the compatibility column) differs from golfprof's, when it does by over a point."""
    ours, theirs = r.overlap_pct, r.hta.overlap_pct if r.hta else None
    if ours is None or theirs is None or abs(ours - theirs) <= OVERLAP_NOTE_PP:
        return None
    why = []
    n, us = r.hta_cpu_compute
    if n:
        why.append(f"counts CPU-side rows with a stream as GPU compute ({n} in the trace, Triton cpu_op launches, "
                   f"{us / 1e3:.1f} ms)")
    if drop_last and r.steps >= 2:
        why.append("leaves out the last profiled step")
    if not r.before.empty:
        why.append(f"counts the {r.before['ms'].sum():.1f} ms of work launched before the window")
    cause = ", ".join(why) if why else "differs for a cause golfprof does not identify"
    return (f"overlap {ours:.1f}% (GPU kernels, every profiled step) vs HTA's {theirs:.1f}% (hta_overlap_pct): "
            f"HTA {cause}")


def combine(ranks: list[RankSummary], pattern: re.Pattern[str]) -> RunSummary:
    """Join the ranks of one profiling window: HTA's step filter (decided over all ranks) and skew."""
    step_names: set[str] = set()
    for r in ranks:
        step_names |= r.hta_step_names
    drop_last = len(step_names) >= 2
    ranks = sorted((dataclasses.replace(r, hta=r.hta_variants[drop_last]) for r in ranks), key=lambda r: r.rank)
    for r in ranks:
        note = overlap_note(r, drop_last)
        if note:
            r.notes = [*r.notes, note]
    seqs = {r.rank: r.comm_seq for r in ranks}
    offsets = clocks.offsets(seqs)
    for rank, note in clocks.offset_notes(offsets).items():
        r = next(r for r in ranks if r.rank == rank)
        r.notes = [*r.notes, note]
    skew = comm.rank_skew(seqs)
    unequal = unequal_steps({r.rank: r.steps for r in ranks})
    return RunSummary(phase_regex=pattern.pattern, ranks=ranks, skew=skew, clocks=offsets,
                      late=lateness.late_reasons(seqs, skew, offsets), warnings=[unequal] if unequal else [])


def unequal_steps(counts: dict[int, int]) -> str | None:
    """Ranks of one window that profiled different numbers of steps: their per-step figures average different
    steps and the skew pairs unlike collectives, which a user must be told (a rank stopped early, a trace cut)."""
    if len(set(counts.values())) <= 1:
        return None
    listed = ", ".join(f"rank {r}: {n}" for r, n in sorted(counts.items()))
    return (f"ranks profiled unequal numbers of steps ({listed}): per-rank figures average different steps, and "
            "the skew between ranks compares only the collectives they share")
