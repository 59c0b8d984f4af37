"""A matrix's comparison: per variant and metric an estimate with CI and the difference to the baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from . import stats
from .health import run_checks
from .samples import DIRECTION, PHASE_PREFIX, higher_is_better, load_run

TABLE_METRICS = ("ms_per_step", "optimizer_ms", "forward_backward_ms", "tokens_per_s", "final_loss")


def _phase_metrics(runs: list) -> list[str]:
    names: set[str] = set()
    for r in runs:
        names.update(k for k in r.samples if k.startswith(PHASE_PREFIX))
    return sorted(names)


def comparison(matrix_dir: Path, state: dict[str, Any]) -> dict[str, Any]:
    """Per variant and metric: estimate with CI, difference to the baseline and its significance."""
    baseline = state["baseline"]
    by_variant: dict[str, list] = {v: [] for v in state["variants"]}
    for name, info in sorted(state["runs"].items()):
        if info["status"] == "ok" and info["variant"] in by_variant:
            by_variant[info["variant"]].append(load_run(matrix_dir / name))
    failed = {n: i["error"] for n, i in state["runs"].items() if i["status"] != "ok"}
    all_runs = [r for rs in by_variant.values() for r in rs]
    metrics = list(TABLE_METRICS) + _phase_metrics(all_runs)
    rows = []
    for variant, runs in by_variant.items():
        for metric in metrics:
            series = [r.values(metric) for r in runs]
            est = stats.estimate(series)
            row = {"variant": variant, "metric": metric, "runs": len(runs), "value": est.value,
                   "ci_lo": est.lo, "ci_hi": est.hi, "ci_method": est.method}
            base_runs = by_variant.get(baseline, [])
            if variant != baseline and base_runs and runs:
                d = stats.compare([r.values(metric) for r in base_runs], series)
                better_high = metric in DIRECTION and higher_is_better(metric)
                row.update(diff=d.diff, diff_lo=d.lo, diff_hi=d.hi, diff_pct=d.rel_pct, p_value=d.p_value,
                           significant=d.significant, test=d.method,
                           verdict=stats.verdict(d, better_high))
            rows.append(row)
    note = ("95% intervals; Welch's t on per-run medians with >=2 repeats per side (repeats are "
            "independent, steps are not), else Welch's t on batch medians of consecutive steps")
    if any(len(rs) == 1 for rs in by_variant.values()):
        note += (". With one run, intervals hold only the noise within that run, not the spread between "
                 "processes, which on GPUs is larger: run --repeats 2 or more before trusting a verdict")
    return {"baseline": baseline, "failed": failed, "rows": rows, "note": note, **run_checks(by_variant)}


def comparison_frame(result: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(result["rows"])
