"""Is the profiled window typical? golfprof times every step and traces a few: the step timers of the
run's other steps say whether the traced ones ran as the rest did, or caught a slow stretch or an outlier
(a data stall, a GC pause), which would make the trace's findings about those steps, not the run (pure).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SLOW_SHARE = 0.05  # the window's median step above the others' by this share ...
OUTLIER_MADS = 5.0  # ... or a profiled step this many median absolute deviations above the others' median
MIN_OTHERS = 3  # timed steps outside the window needed for a comparison


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
