"""Collectives as golfprof's recorder saw them being issued, per step: what a trace cannot show on gloo.

A CPU trace has no NCCL kernels, so `golfprof analyze` finds no communication in it; the run directory of a
profiled script (or a simulated world) keeps every collective each rank issued (profiler/collectives.py), with
op, dtype, bytes, group size, phase and step. Counted here over the steps a trace profiled, they list the same
collectives on gloo as on NCCL. Pure over frames, apart from ``read``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from golfprof.profiler.rundir import RunDir

COLUMNS = ["op", "dtype", "phase", "count_per_step", "bytes_per_step", "median_bytes", "data_dependent"]


def read(run_dir: Path) -> dict[int, pd.DataFrame]:
    """Each rank's recorded collectives in a run directory: a profiled script's real ranks, else the simulated
    ones; {} for a folder that has none (a golfprof trainer run, a folder of traces)."""
    rd = RunDir(Path(run_dir))
    if not rd.path.is_dir():
        return {}
    out = {r: pd.read_parquet(rd.recorded_collectives(r)) for r in rd.script_ranks()
           if rd.recorded_collectives(r).is_file()}
    if out:
        return out
    return {r: pd.read_parquet(rd.collectives(r)) for r in rd.simulated_ranks()}


def per_step(frame: pd.DataFrame, steps: list[int]) -> pd.DataFrame:
    """Per (op, dtype, phase) over ``steps``: collectives and bytes per step, the median message, and whether
    any of them had a size set by data (all_to_all); largest bytes per step first. Empty without steps."""
    if frame.empty or not steps:
        return pd.DataFrame(columns=COLUMNS)
    f = frame[frame["step"].isin(steps)].fillna({"dtype": "", "phase": ""})
    if f.empty:
        return pd.DataFrame(columns=COLUMNS)
    depends = f["data_dependent"] if "data_dependent" in f else pd.Series(False, index=f.index)
    g = f.assign(data_dependent=depends.astype(bool)).groupby(["op", "dtype", "phase"], sort=True)
    n = len(set(steps))
    out = pd.DataFrame({"count_per_step": g.size() / n, "bytes_per_step": g["bytes"].sum() / n,
                        "median_bytes": g["bytes"].median(), "data_dependent": g["data_dependent"].any()}
                       ).reset_index()
    out["dtype"] = out["dtype"].replace("", None)
    out["phase"] = out["phase"].replace("", None)
    return out.sort_values("bytes_per_step", ascending=False, kind="stable").reset_index(drop=True)[COLUMNS]
