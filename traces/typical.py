"""Is the profiled window typical? golfprof times every step and traces a few: the step timers of the
run's other steps say whether the traced ones ran as the rest did, or caught a slow stretch or an outlier
(a data stall, a GC pause), which would make the trace's findings about those steps, not the run (pure).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from golfprof.profiler import names
from golfprof.profiler.window import Window

SLOW_SHARE = 0.05  # the window's median step above the others' by this share ...
OUTLIER_MADS = 5.0  # ... or a profiled step this many median absolute deviations above the others' median
MIN_OTHERS = 3  # timed steps outside the window needed for a comparison
DEFECT_PCT = 2.0  # a window further than this from the rest is golfprof's defect (issue 25): its line names why
OUTSIDE = "outside phases"


def window_vs_timers(steps: pd.DataFrame, profiled: list[int], warmup: int = 1) -> dict[str, Any] | None:
    """Profiled steps' timer ms against the other timed steps' (step >= ``warmup``).

    ``steps``: a run's per-step timers (columns step, ms). Returns medians, spread (p25-p75), the profiled
    steps that are outliers and a verdict (``typical``, ``slow``, ``outlier``); None without enough steps.
    """
    s = steps[steps["step"] >= warmup]
    inside = s[s["step"].isin(profiled)]
    others = s[~s["step"].isin(profiled)]["ms"].to_numpy(float)
    if inside.empty or len(others) < MIN_OTHERS:
        return None
    med = float(np.median(others))
    mad = float(np.median(np.abs(others - med))) or 1e-9
    p25, p75 = (float(v) for v in np.percentile(others, [25, 75]))
    limit = med + max(OUTLIER_MADS * mad, SLOW_SHARE * med)
    out_steps = inside[inside["ms"] > limit]
    win = float(inside["ms"].median())
    verdict = "slow" if win > med * (1 + SLOW_SHARE) else "outlier" if len(out_steps) else "typical"
    return {"profiled_median_ms": win, "others_median_ms": med, "others_p25_ms": p25, "others_p75_ms": p75,
            "others": int(len(others)), "outliers": {int(r.step): float(r.ms) for r in out_steps.itertuples()},
            "others_outliers": int((others > limit).sum()), "verdict": verdict}


def window_note(w: dict[str, Any]) -> str | None:
    """One line when the window is not typical of the run."""
    if w["verdict"] == "typical":
        return None
    med, win = w["others_median_ms"], w["profiled_median_ms"]
    spread = f"{w['others_p25_ms']:.1f}-{w['others_p75_ms']:.1f}"
    outl = ", ".join(f"step {s} {ms:.1f} ms" for s, ms in w["outliers"].items())
    head = (f"the profiled steps ran at {win:.1f} ms/step (step timers), the run's {w['others']} other steps at "
            f"{med:.1f} (p25-p75 {spread})")
    if w["verdict"] == "slow":
        return f"{head}: the window ran {100 * (win / med - 1):.0f}% slower than the rest" + (
            f", catching {outl}" if outl else "") + "; its findings may be about that, not the run"
    return f"{head}: the window caught an outlier ({outl}); findings about its time may not hold for the run"


def _children(name: str, candidates: list[str]) -> list[str]:
    """The phases nested in ``name`` with no phase between (muon/<bank>/orthogonalize is muon's child)."""
    below = [c for c in candidates if c.startswith(name + "/")]
    return [c for c in below if not any(c.startswith(b + "/") for b in below)]


def atypical_phase(steps: pd.DataFrame, phases: pd.DataFrame, profiled: list[int],
                   others: list[int]) -> dict[str, Any] | None:
    """The phase whose per-step time grew most in the profiled steps against the others (medians), followed
    down while one child holds most of its parent's growth; ``outside phases`` is the step timer's time that
    no top-level phase covers (the step's own bookkeeping, host stalls between marks). None without phases.

    ``phases``: a run's phase table (step, phase, ms; several rows per step and phase allowed), ``steps`` its
    step timers (step, ms).
    """
    if phases.empty or not profiled or not others:
        return None
    per = phases.groupby(["step", "phase"])["ms"].sum().unstack("phase")
    top = [c for c in per.columns if names.is_top_level(c)]
    if not top:
        return None
    timer = steps.set_index("step")["ms"]
    per[OUTSIDE] = timer.reindex(per.index) - per[top].fillna(0).sum(axis=1)

    def median(col: str, which: list[int]) -> float:
        v = per[col].reindex(which).dropna()
        return float(v.median()) if len(v) else 0.0

    def excess(col: str) -> float:
        return median(col, profiled) - median(col, others)

    best = max([*top, OUTSIDE], key=excess)
    candidates = [c for c in per.columns if c != OUTSIDE]
    while (kids := _children(best, candidates)) and excess(child := max(kids, key=excess)) >= 0.5 * excess(best):
        best = child
    return {"name": best, "profiled_ms": median(best, profiled), "others_ms": median(best, others),
            "excess_ms": excess(best)}


def run_window_check(steps: pd.DataFrame, phases: pd.DataFrame, warmup: int,
                     window: Window | None) -> dict[str, Any] | None:
    """The window check of one rank at the end of its run: ``window_vs_timers`` over the traced steps against
    the timed ones (the profiler's warm-up steps, traced by nobody but slowed by it, are left out of both), its
    excess in percent (``window_vs_rest_pct``), and the phase that made the difference (``phase``)."""
    if window is None:
        return None
    profiled = list(range(window.wait + window.warmup, window.end))
    kept = steps[~steps["step"].isin(range(window.wait, window.wait + window.warmup))]
    check = window_vs_timers(kept, profiled, warmup)
    if check is None:
        return None
    others = [int(s) for s in kept["step"] if s >= warmup and s not in profiled]
    check["window_vs_rest_pct"] = 100 * (check["profiled_median_ms"] / check["others_median_ms"] - 1)
    check["phase"] = atypical_phase(kept, phases, profiled, others)
    check["outliers"] = {str(k): v for k, v in check["outliers"].items()}  # summary.json's keys are text
    return check


def window_line(w: dict[str, Any]) -> str:
    """The exit summary's line: how far the profiled window ran from the rest and, when it ran off, why."""
    pct = w["window_vs_rest_pct"]
    head = (f"profiled window {w['verdict']}: {w['profiled_median_ms']:.1f} ms/step against "
            f"{w['others_median_ms']:.1f} in the run's {w['others']} other timed steps ({pct:+.1f}%)")
    phase = w.get("phase")
    if (w["verdict"] == "typical" and abs(pct) <= DEFECT_PCT) or not phase:
        return head
    name = phase["name"] if phase["name"] == OUTSIDE else phase["name"].removeprefix(names.STEP + "/")
    return (f"{head}; {name} made the difference: {phase['profiled_ms']:.1f} ms/step in the window against "
            f"{phase['others_ms']:.1f} ({phase['excess_ms']:+.1f})")
