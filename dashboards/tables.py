"""The numbers of each chart as a plain table (column names carry the units)."""

from __future__ import annotations

import math

import pandas as pd

from .data import Comparison, short_phase
from .timeline import RankTimeline


def _ci(lo: float, hi: float) -> str:
    return "–" if math.isnan(lo) or math.isnan(hi) else f"{lo:.3f} – {hi:.3f}"


def timeline_table(timelines: list[RankTimeline]) -> pd.DataFrame:
    """Per rank, lane and phase: what the lane did during the drawn step."""
    rows = []
    for t in timelines:
        for (lane, phase), s in t.segments.groupby(["lane", "phase"], sort=False):
            rows.append({"rank": t.rank, "step": t.step, "lane": lane, "phase": short_phase(phase),
                         "segments": len(s), "kernels / ranges": int(s["items"].sum()),
                         "busy ms": s["busy_ms"].sum(), "first start ms": s["start_ms"].min(),
                         "last end ms": s["end_ms"].max()})
    return pd.DataFrame(rows)


def overlap_table(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "rank": frame["rank"], "phase": [short_phase(p) for p in frame["phase"]],
        "kernels per step": frame["kernels"], "communication ms/step": frame["comm_ms"],
        "hidden ms/step": frame["hidden_ms"], "exposed ms/step": frame["exposed_ms"],
        "exposed %": frame["exposed_pct"],
    })


def comparison_table(cmp: Comparison) -> pd.DataFrame:
    f = cmp.frame
    out = pd.DataFrame({
        "variant": [f"{v} (baseline)" if b else v for v, b in zip(f["variant"], f["baseline"])],
        "runs": f["runs"],
        "ms/step": f["ms_per_step"], "ms/step 95% CI": [_ci(a, b) for a, b in zip(f["ms_lo"], f["ms_hi"])],
        "ms/step Δ% vs baseline": f["ms_diff_pct"], "ms/step verdict": f["ms_verdict"],
        "optimizer ms": f["optimizer_ms"], "optimizer 95% CI": [_ci(a, b) for a, b in zip(f["opt_lo"], f["opt_hi"])],
        "optimizer Δ% vs baseline": f["opt_diff_pct"], "optimizer verdict": f["opt_verdict"],
        "interval from": f["ci"],
    })
    for p in cmp.stack:
        out[f"{short_phase(p)} ms"] = f[p]
    return out


def trend_table(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "run": frame["run"], "variant": frame["variant"], "started": frame["started"], "git": frame["git"],
        "metric": frame["metric"], "median ms": frame["value"],
        "95% CI": [_ci(a, b) for a, b in zip(frame["ci_lo"], frame["ci_hi"])],
        "baseline ms": frame["baseline"], "threshold ms": frame["threshold"], "change %": frame["change_pct"],
        "regressed": ["yes" if r else "no" for r in frame["regressed"]], "gate": frame["why"],
    })


def diff_phase_table(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "rank": frame["rank"], "phase": [short_phase(p) for p in frame["phase"]],
        "GPU busy A ms/step": frame["gpu_busy_ms_a"], "GPU busy B ms/step": frame["gpu_busy_ms_b"],
        "Δ GPU busy ms/step": frame["gpu_busy_ms_delta"], "CPU A ms/step": frame["cpu_ms_a"],
        "CPU B ms/step": frame["cpu_ms_b"], "Δ CPU ms/step": frame["cpu_ms_delta"],
        "Δ exposed comm ms/step": frame["exposed_comm_ms_delta"],
    })


def diff_kernel_table(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "rank": frame["rank"], "kind": frame["kind"], "kernel group": frame["kernel"],
        "count/step A": frame["count_per_step_a"], "count/step B": frame["count_per_step_b"],
        "Δ count/step": frame["count_delta"], "ms/step A": frame["ms_per_step_a"], "ms/step B": frame["ms_per_step_b"],
        "Δ ms/step": frame["ms_delta"],
    })
