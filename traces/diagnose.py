"""A short list of findings a speedrunner acts on, each with its numbers, biggest cost first.

Thresholds are deliberately coarse: a finding must be worth a change to the trainer, so each one
needs an absolute cost (ms per step) as well as a relative one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from . import lateness
from .summary import RankSummary, RunSummary

LAUNCH_RATIO = 2.0  # CPU time per unit of GPU work that makes a phase launch-bound
MIN_MS = 1.0  # smallest cost per step worth reporting
TINY_COUNT = 16  # collectives of one kind per step before bucketing pays
TINY_BYTES = 1 << 20
TINY_US = 50.0  # used when the trace has no message sizes
SKEW_MIN_MS = 0.5
SKEW_SHARE = 0.3  # waiting as a share of the rank's time in that collective
EXPOSED_SHARE = 0.05  # of the step; below it exposed communication is listed only as the rank's largest cost
BUSY_PCT = 85.0
COST_FLOOR_MS = 0.5  # every finding costs at least this per step ...
COST_FLOOR_SHARE = 0.005  # ... and this share of the step: 0.3 ms of a 345 ms step is noise


def cost_floor(step_ms: float | None) -> float:
    """Smallest cost per step (ms) a finding must have on a rank whose median step is ``step_ms``."""
    return max(COST_FLOOR_MS, COST_FLOOR_SHARE * step_ms) if step_ms else COST_FLOOR_MS


@dataclass
class Diagnosis:
    kind: str
    message: str
    cost_ms: float  # estimated time per step at stake, for ordering
    ranks: list[int] = field(default_factory=list)
    numbers: dict[str, float | int | str | None] = field(default_factory=dict)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _launch_bound(r: RankSummary) -> list[Diagnosis]:
    """Phases whose CPU time (minus blocking syncs) far exceeds their GPU work; outermost one reported.

    The cost is the GPU idle time the phase's launches ended: with a deep queue of earlier work a
    slow phase costs nothing yet, but it will once the GPU side gets faster.
    """
    p = r.phases
    if not r.has_gpu or p.empty:
        return []
    active = p["cpu_ms"] - p["sync_ms"]
    hit = (active >= LAUNCH_RATIO * p["gpu_busy_ms"]) & (active - p["gpu_busy_ms"] >= MIN_MS)
    flagged = set(p.index[hit])
    out = []
    for name in flagged:
        up = p.at[name, "parent"]
        while isinstance(up, str) and up not in flagged:
            up = p.at[up, "parent"] if up in p.index else None
        if isinstance(up, str):
            continue
        row = p.loc[name]
        n_k, n_c = float(row["kernels"]), float(row.get("copies", 0.0))
        work = f"{n_k:.0f} kernel{'' if round(n_k) == 1 else 's'}"
        if n_c >= 0.5:
            work += f", {n_c:.0f} cop{'y' if round(n_c) == 1 else 'ies'}"
        out.append(Diagnosis(
            kind="launch_bound",
            message=(f"{name} is launch-bound: {active[name]:.1f} ms on the CPU for {row['gpu_busy_ms']:.2f} ms "
                     f"of GPU work ({work} per step); the GPU idles "
                     f"{row['gpu_idle_ms']:.1f} ms per step waiting for it"),
            cost_ms=float(row["gpu_idle_ms"]),
            ranks=[r.rank],
            numbers={"phase": name, "cpu_ms": float(active[name]), "gpu_busy_ms": float(row["gpu_busy_ms"]),
                     "gpu_idle_ms": float(row["gpu_idle_ms"]), "kernels": float(row["kernels"])},
        ))
    return out


def _tiny_collectives(r: RankSummary) -> list[Diagnosis]:
    out = []
    for _, c in r.collectives.iterrows():
        if c["count_per_step"] < TINY_COUNT:
            continue
        size = c["median_bytes"]
        tiny = size < TINY_BYTES if size is not None and size == size else c["median_us"] < TINY_US
        if not tiny:
            continue
        what = f"median {_fmt_bytes(size)}, " if size is not None and size == size else "median "
        op = c["op"].replace("_", "-")
        out.append(Diagnosis(
            kind="tiny_collectives",
            message=(f"{c['count_per_step']:.0f} tiny {op}s per step ({what}{c['median_us']:.0f} µs each, "
                     f"{c['ms_per_step']:.1f} ms per step): bucket them"),
            cost_ms=float(c["ms_per_step"]),
            ranks=[r.rank],
            numbers={"op": c["op"], "count_per_step": float(c["count_per_step"]),
                     "median_bytes": None if size is None or size != size else float(size),
                     "median_us": float(c["median_us"]), "ms_per_step": float(c["ms_per_step"])},
        ))
    return out


def _exposed(r: RankSummary, largest_other_ms: float) -> list[Diagnosis]:
    """Exposed communication: worth a line at 5% of the step, or below that when nothing costs the rank more."""
    if not r.has_gpu or not r.exposed_comm_ms or r.step_ms is None:
        return []
    x = r.exposed_comm_ms
    share = x / r.step_ms
    if share < EXPOSED_SHARE and x <= largest_other_ms:
        return []
    where = ""
    p = r.phases
    if not p.empty:
        deep = p[p["exposed_comm_ms"] >= 0.5 * x].sort_values("depth", ascending=False, kind="stable")
        if not deep.empty:
            where = f", most of it in {deep.index[0]} ({deep['exposed_comm_ms'].iloc[0]:.1f} ms)"
    return [Diagnosis(
        kind="exposed_comm",
        message=(f"{x:.1f} ms of communication per step is exposed (no compute kernel runs beside it), "
                 f"{100 * share:.0f}% of the step{where}"
                 + ("; the largest cost found on this rank" if share < EXPOSED_SHARE else "")),
        cost_ms=x,
        ranks=[r.rank],
        numbers={"exposed_comm_ms": x, "step_ms": r.step_ms},
    )]


def _idle(r: RankSummary) -> list[Diagnosis]:
    if r.gpu_busy_pct is None or r.step_ms is None or r.gpu_busy_pct >= BUSY_PCT:
        return []
    idle_ms = r.step_ms * (1 - r.gpu_busy_pct / 100)
    if idle_ms < MIN_MS:
        return []
    return [Diagnosis(
        kind="gpu_idle",
        message=f"GPU busy only {r.gpu_busy_pct:.1f}% of the step: {idle_ms:.1f} ms idle per step",
        cost_ms=idle_ms,
        ranks=[r.rank],
        numbers={"gpu_busy_pct": r.gpu_busy_pct, "idle_ms": idle_ms},
    )]


def _skew(skew: pd.DataFrame, late: pd.DataFrame | None = None) -> list[Diagnosis]:
    """Ranks waiting in collectives for a late peer, and (``lateness.late_reasons``) where the peer was."""
    why = {} if late is None or late.empty else {(int(x["rank"]), x["op"]): x for _, x in late.iterrows()}
    out = []
    for _, s in skew.iterrows():
        w, total = s["wait_ms_per_step"], s["comm_ms_per_step"]
        if s["waits_for"] is None or s["waits_for"] != s["waits_for"]:
            continue
        if w < SKEW_MIN_MS or total <= 0 or w / total < SKEW_SHARE:
            continue
        peer = int(s["waits_for"])
        op = s["op"].replace("_", "-")
        reason = why.get((int(s["rank"]), s["op"]))
        numbers = {"op": s["op"], "waits_for": peer, "wait_ms_per_step": float(w), "comm_ms_per_step": float(total)}
        if reason is not None:
            numbers |= {k: reason[k] for k in ("start_late_ms", "launch_late_ms", "queue_ms", "queue_busy_ms",
                                               "queue_phase", "queue_kernel")}
        out.append(Diagnosis(
            kind="rank_skew",
            message=(f"rank {s['rank']} waits {w:.1f} ms per step in {op} for rank {peer} "
                     f"({100 * w / total:.0f}% of its {op} time)"
                     + (f"; {lateness.explain(reason)}" if reason is not None else "")),
            cost_ms=float(w),
            ranks=[int(s["rank"])],
            numbers=numbers,
        ))
    return out


def _merge_ranks(found: list[Diagnosis]) -> list[Diagnosis]:
    """The same finding on several ranks is one line: the worst rank's numbers, all ranks listed."""
    groups: dict[tuple[str, str], list[Diagnosis]] = {}
    for d in found:
        key = (d.kind, str(d.numbers.get("phase", d.numbers.get("op", ""))))
        if d.kind == "rank_skew":
            key = (d.kind, f"{d.ranks}{d.numbers['op']}")
        groups.setdefault(key, []).append(d)
    out = []
    for ds in groups.values():
        worst = max(ds, key=lambda d: d.cost_ms)
        ranks = sorted({r for d in ds for r in d.ranks})
        msg = worst.message if len(ranks) == 1 else f"{worst.message} (worst on rank {worst.ranks[0]}; ranks {ranks})"
        out.append(Diagnosis(worst.kind, msg, worst.cost_ms, ranks, worst.numbers))
    return sorted(out, key=lambda d: -d.cost_ms)


def diagnose(run: RunSummary) -> list[Diagnosis]:
    """Every rank's findings that clear the cost floor (``cost_floor``), merged across ranks, largest first."""
    skew = _skew(run.skew, run.late)
    found: list[Diagnosis] = []
    for r in run.ranks:
        floor = cost_floor(r.step_ms)
        own = [d for d in _launch_bound(r) + _tiny_collectives(r) + _idle(r) + skew
               if r.rank in d.ranks and d.cost_ms >= floor]
        largest = max((d.cost_ms for d in own), default=0.0)
        found += own + [d for d in _exposed(r, largest) if d.cost_ms >= floor]
    return _merge_ranks(found)
