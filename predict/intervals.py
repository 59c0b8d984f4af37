"""An interval beside every predicted step: the played rank's own step spread and the comm table's ±.

- **Step spread.** The rank's timed steps (steps-rank<R>.parquet) give how far its step strays from the
  median the prediction stands on: the 10th and 90th percentiles (QUANTILES) minus the median, the widest of
  the simulated ranks'.
- **Table ±.** The comm table's ``uncertainty`` u (a relative ± on each collective's time, documented per
  table) replays the step with every collective u shorter and u longer.

interval = [replay(1 − u) + (p10 − median), replay(1 + u) + (p90 − median)]; it holds the point because the
replay is monotone in collective lengths and p10 ≤ median ≤ p90.
"""

from __future__ import annotations

import numpy as np

QUANTILES = (0.1, 0.9)


def spread(step_ms: list[np.ndarray]) -> tuple[float, float]:
    """(lo, hi) ms offsets from the median of each rank's timed steps, the widest of the ranks (0, 0 if none)."""
    lo, hi = 0.0, 0.0
    for ms in step_ms:
        ms = np.asarray(ms, float)
        ms = ms[np.isfinite(ms)]
        if len(ms) < 2:
            continue
        med = float(np.median(ms))
        q_lo, q_hi = (float(np.quantile(ms, q)) for q in QUANTILES)
        lo, hi = min(lo, q_lo - med), max(hi, q_hi - med)
    return lo, hi


def interval(point_lo_ms: float, point_hi_ms: float, offsets: tuple[float, float]) -> list[float]:
    """[lo, hi] ms from the replays at the table's −u and +u and the step spread's offsets."""
    return [point_lo_ms + offsets[0], point_hi_ms + offsets[1]]


def overlap(a: list[float] | None, b: list[float] | None) -> bool:
    """Two intervals share a point: their predictions are not distinguishable."""
    return a is not None and b is not None and a[0] <= b[1] and b[0] <= a[1]
