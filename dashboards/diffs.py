"""Baseline run vs other runs, through ``golfprof.traces.diff``: the frames the Diff charts draw (pure).

The numbers are ``golfprof diff A B``'s (same rank summaries, same kernel grouping, same first
profiling window); this module only picks the runs and ranks, keeps what moved and orders it
largest change first, so a chart's top bar is the first thing to explain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from golfprof.traces.diff import EPS, RankDiff, diff_rank
from golfprof.traces.summary import RankSummary

from .command import MAX_DIFFS  # defined with the option it bounds (that module loads no pandas)
from .runs import Run

FEW_RANKS = 2  # up to this many ranks each gets its rows; beyond, the lowest rank speaks for all
APPEARED, VANISHED, CHANGED = "appeared in B", "vanished (only in A)", "changed"
PHASE_DELTAS = ("gpu_busy_ms_delta", "cpu_ms_delta")  # what the phase chart draws
RankInputs = dict[int, tuple[RankSummary, pd.DataFrame]]  # rank -> (summary, kernel table), as `golfprof diff` loads


@dataclass
class RunDiff:
    a: str  # run names: A is the baseline
    b: str
    ranks: list[int]  # compared ranks
    step_ms: dict[int, tuple[float | None, float | None]]  # rank -> median profiled step, A and B
    phases: pd.DataFrame  # rank, phase, cpu_ms_*, gpu_busy_ms_*, exposed_comm_ms_* (a, b, delta): moved phases
    kernels: pd.DataFrame  # rank, kind, kernel, count_per_step_*, ms_per_step_* (a, b), count_delta, ms_delta
    same: bool  # nothing moved on any compared rank: phases, kernels and collectives alike
    notes: list[str] = field(default_factory=list)
    families: pd.DataFrame = field(default_factory=pd.DataFrame)  # as kernels, one row per kernel family that moved


def plan(firsts: dict[str, Run], with_traces: list[Run], baseline: str) -> tuple[Run | None, list[Run], int]:
    """(A, the runs diffed against it, how many more were left out).

    A is the run the timeline draws for the comparison baseline (else the first configuration's);
    the other configurations come first, then repeats, so a matrix diffs variants before noise and
    a series of one configuration still diffs its runs.
    """
    if not firsts:
        return None, [], 0
    base = firsts.get(baseline, next(iter(firsts.values())))
    drawn = {id(r) for r in firsts.values()}
    others = [r for r in firsts.values() if r is not base] + [r for r in with_traces if id(r) not in drawn]
    return base, others[:MAX_DIFFS], max(len(others) - MAX_DIFFS, 0)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The non-empty frames stacked (pandas warns about concatenating empty ones); empty if none."""
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _by_size(frame: pd.DataFrame, columns: list[str], key: str) -> pd.DataFrame:
    """Largest |Δ| first; the ranks of one phase or kernel stay together, ordered by their largest."""
    if frame.empty:
        return frame
    size = frame[columns].abs().fillna(0.0).max(axis=1)
    order = pd.DataFrame({"size": -size.groupby(frame[key]).transform("max"), "key": frame[key], "rank": frame["rank"]})
    return frame.loc[order.sort_values(["size", "key", "rank"], kind="stable").index].reset_index(drop=True)


def phase_rows(d: RankDiff) -> pd.DataFrame:
    """Phases whose CPU, GPU busy or exposed-communication time moved (NaN, a CPU-only side: not moved)."""
    p = d.phases
    moved = (p[[c for c in p.columns if c.endswith("_delta")]].abs() > EPS).any(axis=1)
    return p[moved].assign(rank=d.rank)


def kernel_rows(d: RankDiff) -> pd.DataFrame:
    return _concat([f.assign(rank=d.rank, kind=kind)
                    for kind, f in ((APPEARED, d.appeared), (VANISHED, d.vanished), (CHANGED, d.changed))])


def family_rows(d: RankDiff) -> pd.DataFrame:
    """Kernel families (attention, matmul, ...) whose time moved, in kernel_rows' columns."""
    f = d.families
    if f.empty:
        return f
    f = f[f["ms_delta"].abs() > EPS]
    kind = [APPEARED if a == 0 else VANISHED if b == 0 else CHANGED
            for a, b in zip(f["count_per_step_a"], f["count_per_step_b"])]
    return f.assign(rank=d.rank, kind=kind)


def shown_ranks(common: list[int]) -> list[int]:
    return common if len(common) <= FEW_RANKS else common[:1]


def _collective_note(rank: int, row: pd.Series) -> str:
    what = " ".join(str(row[k]) for k in ("op", "dtype", "algo") if isinstance(row[k], str) and row[k])
    size = " → ".join("–" if pd.isna(v) else f"{v:,.0f}" for v in (row["median_bytes_a"], row["median_bytes_b"]))
    return (f"rank {rank}: collective {what or '?'} changed: {row['count_per_step_a']:g} → {row['count_per_step_b']:g} "
            f"per step, median {size} bytes, Δ {row['ms_delta']:+.3f} ms/step")


def diff_runs(a_name: str, a: RankInputs, b_name: str, b: RankInputs) -> RunDiff:
    """Diff the shown ranks of two runs; the collectives that changed become notes (no chart of their own)."""
    common = sorted(set(a) & set(b))
    ranks = shown_ranks(common)
    diffs = [diff_rank(a[r][0], b[r][0], a[r][1], b[r][1]) for r in ranks]
    notes = [f"rank {r} is only in {'A' if r in a else 'B'}: not compared" for r in sorted(set(a) ^ set(b))]
    if not common:
        notes.append(f"no rank is in both runs (A has {sorted(a)}, B has {sorted(b)})")
    if len(common) > len(ranks):
        notes.append(f"{len(common)} ranks: rank {ranks[0]} is shown (golfprof diff lists every rank)")
    notes += [f"rank {d.rank}: {n}" for d in diffs for n in d.notes]
    notes += [_collective_note(d.rank, row) for d in diffs for _, row in d.collectives.iterrows()]
    return RunDiff(
        a=a_name, b=b_name, ranks=ranks, step_ms={r: (a[r][0].step_ms, b[r][0].step_ms) for r in ranks},
        phases=_by_size(_concat([phase_rows(d) for d in diffs]), list(PHASE_DELTAS), "phase"),
        kernels=_by_size(_concat([kernel_rows(d) for d in diffs]), ["ms_delta"], "kernel"),
        families=_by_size(_concat([family_rows(d) for d in diffs]), ["ms_delta"], "kernel"),
        same=bool(diffs) and all(d.empty for d in diffs), notes=notes,
    )


def step_change(d: RunDiff, rank: int) -> str:
    """'step 10.000 → 10.200 ms (+2.0%)' for a chart title; '' when a side has no step ranges."""
    sa, sb = d.step_ms[rank]
    if sa is None or sb is None:
        return ""
    pct = f" ({100 * (sb - sa) / sa:+.1f}%)" if sa else ""
    return f"step {sa:.3f} → {sb:.3f} ms{pct}"
