"""A/A: do repeated, interleaved runs of one variant agree? If two runs of the same code differ by more than the
effects an ablation looks for (the records' DDP delta is about 5% of a step), no variant comparison can be read.
Pure: per-step samples in, a verdict out.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

TOLERANCE_PCT = 1.0  # two runs of one variant agree when their median ms/step are within this (issue 25)


def aa_check(runs: Sequence[Sequence[float]], tolerance_pct: float = TOLERANCE_PCT) -> dict[str, Any] | None:
    """Whether the runs of one variant agree: every run's median ms/step within ``tolerance_pct`` of every
    other's, as a share of the median of the runs' medians. ``runs``: each run's per-step ms (the timed steps).
    None with fewer than two runs that have samples."""
    medians = [float(np.median(np.asarray(r, dtype=float))) for r in runs if len(r)]
    if len(medians) < 2:
        return None
    center = float(np.median(medians))
    spread_pct = 100 * (max(medians) - min(medians)) / center if center else float("inf")
    return {"runs": len(medians), "medians_ms": medians, "median_ms": center, "spread_pct": spread_pct,
            "tolerance_pct": tolerance_pct, "agree": bool(spread_pct <= tolerance_pct)}


def aa_by_variant(samples: dict[str, list[Sequence[float]]],
                  tolerance_pct: float = TOLERANCE_PCT) -> dict[str, dict[str, Any]]:
    """``aa_check`` for each variant with at least two runs (``samples``: variant -> its runs' per-step ms)."""
    out = {}
    for variant, runs in samples.items():
        check = aa_check(runs, tolerance_pct)
        if check is not None:
            out[variant] = check
    return out


def aa_line(variant: str, check: dict[str, Any]) -> str:
    """One line of the comparison output: the runs' medians, their spread, and the verdict."""
    medians = ", ".join(f"{m:.2f}" for m in check["medians_ms"])
    verdict = "agree" if check["agree"] else "DISAGREE: differences below this spread are noise, not the variants"
    return (f"A/A {variant}: {check['runs']} runs at {medians} ms/step, spread {check['spread_pct']:.2f}% "
            f"(tolerance {check['tolerance_pct']:g}%): {verdict}")
