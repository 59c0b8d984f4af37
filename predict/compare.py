"""Several variants' predictions side by side: the table `golfprof ablate --simulate-world` prints."""

from __future__ import annotations

from typing import Any

import pandas as pd

COMPARISON_COLUMNS = ["variant", "measured ms (1 rank)", "predicted ms/step", "Δ vs baseline ms", "optimizer ms",
                      "comm ms", "exposed comm ms", "overlap %"]


def comparison(results: dict[str, dict[str, Any]], baseline: str) -> pd.DataFrame:
    """One row per variant of predicted figures, the step compared with the baseline's prediction."""
    base = results.get(baseline, {}).get("prediction", {}).get("ms_per_step")
    rows = []
    for name, r in results.items():
        p = r["prediction"]
        ms = p["ms_per_step"]
        rows.append([name, r.get("ms_per_step"), ms, ms - base if base is not None and ms is not None else None,
                     p.get("optimizer_ms"), p.get("comm_ms"), p.get("exposed_comm_ms"), p.get("comm_comp_overlap_pct")])
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
