"""Where did the milliseconds go between run A and run B: phases, kernels, collectives (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .kernels import family_table
from .summary import RankSummary

PHASE_COLUMNS = ("cpu_ms", "gpu_busy_ms", "exposed_comm_ms")
EPS = 1e-9


@dataclass
class RankDiff:
    rank: int
    phases: pd.DataFrame  # phase, <col>_a, <col>_b, <col>_delta for PHASE_COLUMNS
    appeared: pd.DataFrame  # kernels only in B
    vanished: pd.DataFrame  # kernels only in A
    changed: pd.DataFrame  # kernels in both whose time or count changed, largest |Δ ms| first
    collectives: pd.DataFrame  # collectives whose count or size changed
    notes: list[str] = field(default_factory=list)
    # kernel time per family (attention, matmul, triton, other), A and B: where a changed kernel's ms went
    families: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def empty(self) -> bool:
        phase_moved = len(self.phases) > 0 and any((self.phases[f"{c}_delta"].abs() > EPS).any() for c in PHASE_COLUMNS)
        kernels = len(self.appeared) or len(self.vanished) or len(self.changed)
        return not (phase_moved or kernels or len(self.collectives))


def phase_diff(a: RankSummary, b: RankSummary) -> pd.DataFrame:
    cols = list(PHASE_COLUMNS)
    pa = a.phases.reindex(columns=cols).astype(float)
    pb = b.phases.reindex(columns=cols).astype(float)
    names = list(dict.fromkeys([*pa.index, *pb.index]))
    pa, pb = pa.reindex(names).fillna(0.0), pb.reindex(names).fillna(0.0)
    out = pd.DataFrame({"phase": names})
    for c in cols:
        out[f"{c}_a"] = pa[c].to_numpy()
        out[f"{c}_b"] = pb[c].to_numpy()
        out[f"{c}_delta"] = out[f"{c}_b"] - out[f"{c}_a"]
    return out


def kernel_diff(ka: pd.DataFrame, kb: pd.DataFrame, top: int = 15) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(appeared, vanished, changed) from two kernel tables."""
    m = ka.merge(kb, on="kernel", how="outer", suffixes=("_a", "_b"), indicator=True)
    for c in ("count_per_step_a", "count_per_step_b", "ms_per_step_a", "ms_per_step_b"):
        m[c] = m[c].fillna(0.0)
    m["ms_delta"] = m["ms_per_step_b"] - m["ms_per_step_a"]
    m["count_delta"] = m["count_per_step_b"] - m["count_per_step_a"]
    cols = ["kernel", "count_per_step_a", "count_per_step_b", "count_delta", "ms_per_step_a", "ms_per_step_b",
            "ms_delta"]
    by_size = lambda df: df.reindex(df["ms_delta"].abs().sort_values(ascending=False, kind="stable").index)[cols]  # noqa: E731
    appeared = by_size(m[m["_merge"] == "right_only"])
    vanished = by_size(m[m["_merge"] == "left_only"])
    both = m[m["_merge"] == "both"]
    moved = both[(both["ms_delta"].abs() > EPS) | (both["count_delta"].abs() > EPS)]
    changed = by_size(moved).head(top).reset_index(drop=True)
    return appeared.reset_index(drop=True), vanished.reset_index(drop=True), changed


def family_diff(ka: pd.DataFrame, kb: pd.DataFrame) -> pd.DataFrame:
    """Per kernel family (column kernel) present on either side: counts and ms per step, A, B and Δ."""
    m = family_table(ka).merge(family_table(kb), on="kernel", how="outer", suffixes=("_a", "_b"), sort=False)
    for c in ("count_per_step_a", "count_per_step_b", "ms_per_step_a", "ms_per_step_b"):
        m[c] = m[c].astype(float).fillna(0.0)
    m["count_delta"] = m["count_per_step_b"] - m["count_per_step_a"]
    m["ms_delta"] = m["ms_per_step_b"] - m["ms_per_step_a"]
    return m[["kernel", "count_per_step_a", "count_per_step_b", "count_delta", "ms_per_step_a", "ms_per_step_b",
              "ms_delta"]].reset_index(drop=True)


def collective_diff(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Collectives (op, dtype, algo, proto) whose count per step or typical bytes changed."""
    keys = ["op", "dtype", "algo", "proto"]
    cols = keys + ["count_per_step", "median_bytes", "ms_per_step"]
    m = a.reindex(columns=cols).merge(b.reindex(columns=cols), on=keys, how="outer", suffixes=("_a", "_b"))
    for c in ("count_per_step_a", "count_per_step_b", "ms_per_step_a", "ms_per_step_b"):
        m[c] = m[c].astype(float).fillna(0.0)
    bytes_a, bytes_b = m["median_bytes_a"].astype(float), m["median_bytes_b"].astype(float)
    bytes_changed = ~np.isclose(bytes_a.fillna(-1), bytes_b.fillna(-1))
    changed = (np.abs(m["count_per_step_b"] - m["count_per_step_a"]) > EPS) | bytes_changed
    out = m[changed].copy()
    out["count_delta"] = out["count_per_step_b"] - out["count_per_step_a"]
    out["ms_delta"] = out["ms_per_step_b"] - out["ms_per_step_a"]
    return out.reset_index(drop=True)


def diff_rank(a: RankSummary, b: RankSummary, ka: pd.DataFrame, kb: pd.DataFrame) -> RankDiff:
    appeared, vanished, changed = kernel_diff(ka, kb)
    notes = []
    if a.has_gpu != b.has_gpu:
        notes.append("only one side has GPU events: kernel and GPU figures compare against nothing")
    return RankDiff(rank=a.rank, phases=phase_diff(a, b), appeared=appeared, vanished=vanished, changed=changed,
                    collectives=collective_diff(a.collectives, b.collectives), notes=notes,
                    families=family_diff(ka, kb))
