"""Several variants' predictions side by side: the table `golfprof ablate --simulate-world` prints."""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import breakdown, intervals

COMPARISON_COLUMNS = ["variant", "measured ms (1 rank)", "predicted ms/step", "interval ms", "Δ vs baseline ms",
                      "verdict", "optimizer ms", "comm ms", "exposed comm ms", "overlap %"]


def _fmt_iv(iv: list[float] | None) -> str:
    return f"[{iv[0]:.2f}, {iv[1]:.2f}]" if iv else ""


def _verdict(iv: list[float] | None, base_iv: list[float] | None, is_base: bool) -> str:
    """As the measured comparison: where the intervals overlap the two are not distinguishable."""
    if is_base:
        return "(baseline)"
    if iv is None or base_iv is None:
        return ""
    return "not distinguishable" if intervals.overlap(iv, base_iv) else ("slower" if iv[0] > base_iv[1] else "faster")


def _row(name: str, r: dict[str, Any], p: dict[str, Any], base: float | None, base_iv: list[float] | None,
         baseline: str) -> list[Any]:
    ms = p["ms_per_step"]
    return [name, r.get("ms_per_step"), ms, _fmt_iv(p.get("interval_ms")),
            ms - base if base is not None and ms is not None else None,
            _verdict(p.get("interval_ms"), base_iv, name == baseline),
            p.get("optimizer_ms"), p.get("comm_ms"), p.get("exposed_comm_ms"), p.get("comm_comp_overlap_pct")]


def comparison(results: dict[str, dict[str, Any]], baseline: str) -> pd.DataFrame:
    """One row per variant of predicted figures, the step compared with the baseline's prediction; with
    --target-gpu a second row per variant for the target GPU."""
    bp = results.get(baseline, {}).get("prediction", {})
    rows = [_row(name, r, r["prediction"], bp.get("ms_per_step"), bp.get("interval_ms"), baseline)
            for name, r in results.items()]
    bt = bp.get("target")
    for name, r in results.items():
        t = r["prediction"].get("target")
        if t and bt:
            label = f"{name} on {t['gpu']}"
            rows.append(_row(label, {}, t, bt["ms_per_step"], bt["interval_ms"], label if name == baseline else ""))
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def causes(results: dict[str, dict[str, Any]], baseline: str) -> pd.DataFrame | None:
    """The breakdown lines of every variant and each one's Δ vs the baseline: the difference as a sum of causes."""
    base = results.get(baseline, {}).get("prediction", {}).get("breakdown")
    if not base:
        return None
    frame = pd.DataFrame({"line": list(breakdown.LINES)})
    for name, r in results.items():
        lines = r["prediction"].get("breakdown") or []
        frame[f"{name} ms"] = breakdown.delta(base, lines)["b_ms"]
        if name != baseline:
            frame[f"Δ {name} ms"] = breakdown.delta(base, lines)["delta_ms"]
    return frame
