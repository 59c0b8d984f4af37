"""Whether the steps a prediction replays are the steps it stands on.

The replay takes its kernels and gaps from the profiled steps' trace and stands the result on the run's median
unprofiled step (the profiler slows the steps it records). Where the profiled steps ran slower by their own
timers, the trace holds time the profiler added: mostly GPU idle while the CPU launched, which absorbs a longer
kernel on a slower target GPU that the real step would not absorb (measured on an H200, an explicit_unbanked
run whose profiled steps ran at 80.9 ms/step against 73.5 unprofiled predicted 76.1 ms/step for 8xH100; its
re-run, at 73.6 against 72.7, predicted 81.7). predict/deflate.py takes the profiler's CPU time out of the trace
before the replay; the prediction says how far the two are apart, before and after.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from golfprof.traces.typical import DEFECT_PCT

FEW_STEPS = 3  # fewer unprofiled steps than this make a shaky anchor


def check(ms: pd.Series, unprofiled: list[int], replayed: list[int],
          deflation: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """``ms``: a rank's step timers by step; the medians of the replayed steps and of the unprofiled ones the
    prediction stands on, how far apart (``off_pct``), and, where predict/deflate.py shrank phases, the deflated
    steps' length against the same anchor. A ``warning`` line where the steps replayed (deflated, if they were)
    are more than DEFECT_PCT off or the anchor has few steps; a ``note`` where deflation brought them within."""
    rep = [float(ms[s]) for s in replayed if s in ms.index]
    anchor = [float(ms[s]) for s in unprofiled if s in ms.index]
    if not rep or not anchor:
        return None
    r, a = float(np.median(rep)), float(np.median(anchor))
    out: dict[str, Any] = {"replayed_median_ms": r, "replayed_steps": len(rep), "anchor_median_ms": a,
                           "anchor_steps": len(anchor), "off_pct": 100 * (r / a - 1)}
    head = (f"the replayed (profiled) steps ran at {r:.1f} ms/step by their timers against {a:.1f} in the "
            f"unprofiled steps the prediction stands on ({out['off_pct']:+.1f}%)")
    why, shrunk = [], (deflation or {}).get("shrunk") or []
    if shrunk:
        d = float(deflation["deflated_ms"])  # type: ignore[index]
        out |= {"deflated_median_ms": d, "deflated_off_pct": 100 * (d / a - 1), "deflated_phases": shrunk}
        took = (f"the profiler's CPU time was taken out of {', '.join(n.rsplit('/', 1)[-1] for n in shrunk)} "
                f"(predict/deflate.py), leaving them at {d:.1f} ({out['deflated_off_pct']:+.1f}%)")
        if abs(out["deflated_off_pct"]) > DEFECT_PCT:
            why.append(f"{head}; {took}: the trace still holds time the real steps would not")
        elif abs(out["off_pct"]) > DEFECT_PCT:
            out["note"] = f"{head}; {took}"
    elif abs(out["off_pct"]) > DEFECT_PCT:
        why.append(f"{head}: the trace holds time the profiler added, which can absorb or add delay the real "
                   "steps would not")
    if len(anchor) < FEW_STEPS:
        why.append(f"the prediction stands on {len(anchor)} unprofiled step(s): give --steps enough for "
                   f"{FEW_STEPS} or more after the profiled window")
    if why:
        out["warning"] = "; ".join(why)
    return out
