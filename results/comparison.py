"""Groups of runs compared with a baseline group: per group and metric an estimate with CI, and the
difference to the baseline with its significance.

One function (:func:`compare_groups`) makes these rows for ``golfprof ablate`` (a matrix's variants, written
to comparison.json) and for the dashboard (its configurations), so the two cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from . import stats
from .health import run_checks
from .samples import DIRECTION, PHASE_PREFIX, RunSamples, higher_is_better, load_run

TABLE_METRICS = ("ms_per_step", "optimizer_ms", "forward_backward_ms", "tokens_per_s", "final_loss")
NOTE = ("95% intervals; Welch's t on per-run medians with >=2 repeats per side (repeats are "
        "independent, steps are not), else Welch's t on batch medians of consecutive steps")
ONE_RUN_NOTE = (". With one run, intervals hold only the noise within that run, not the spread between "
                "processes, which on GPUs is larger: run --repeats 2 or more before trusting a verdict")


def phase_metrics(runs: list[RunSamples]) -> list[str]:
    """Every ``phase:<name>`` metric with per-step samples in any of ``runs``."""
    names: set[str] = set()
    for r in runs:
        names.update(k for k in r.samples if k.startswith(PHASE_PREFIX))
    return sorted(names)


def _better_high(metric: str) -> bool:
    return metric in DIRECTION and higher_is_better(metric)


def _row(group: str, metric: str, runs: list[RunSamples], base_runs: list[RunSamples]) -> dict[str, Any]:
    """One group's metric; compared with ``base_runs`` when both sides have runs (none: the baseline's row)."""
    series = [r.values(metric) for r in runs]
    est = stats.estimate(series)
    row = {"variant": group, "metric": metric, "runs": len(runs), "value": est.value,
           "ci_lo": est.lo, "ci_hi": est.hi, "ci_method": est.method}
    if base_runs and runs:
        d = stats.compare([r.values(metric) for r in base_runs], series)
        row.update(diff=d.diff, diff_lo=d.lo, diff_hi=d.hi, diff_pct=d.rel_pct, p_value=d.p_value,
                   significant=d.significant, test=d.method, verdict=stats.verdict(d, _better_high(metric)))
    return row


def compare_groups(groups: dict[str, list[RunSamples]], baseline: str, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Per group (in order) and metric: the estimate, and for every group but the baseline the difference to
    the baseline group (keys diff, diff_lo, diff_hi, diff_pct, p_value, significant, test, verdict)."""
    base_runs = groups.get(baseline, [])
    return [_row(name, metric, runs, base_runs if name != baseline else [])
            for name, runs in groups.items() for metric in metrics]


def row_verdict(row: dict[str, Any], better: str = "better", worse: str = "worse") -> str:
    """A compared row's verdict in other words (the dashboard's 'faster' / 'slower'): the same interval rule."""
    d = stats.Difference(row["diff"], row["diff_lo"], row["diff_hi"], row["diff_pct"], row.get("p_value"),
                         row.get("test", ""))
    return stats.verdict(d, _better_high(row["metric"]), better=better, worse=worse)


def comparison(matrix_dir: Path, state: dict[str, Any]) -> dict[str, Any]:
    """A matrix's comparison.json: its variants' rows for TABLE_METRICS and every phase, the failed runs, a note."""
    baseline = state["baseline"]
    by_variant: dict[str, list[RunSamples]] = {v: [] for v in state["variants"]}
    for name, info in sorted(state["runs"].items()):
        if info["status"] == "ok" and info["variant"] in by_variant:
            by_variant[info["variant"]].append(load_run(matrix_dir / name))
    failed = {n: i["error"] for n, i in state["runs"].items() if i["status"] != "ok"}
    metrics = list(TABLE_METRICS) + phase_metrics([r for rs in by_variant.values() for r in rs])
    note = NOTE + (ONE_RUN_NOTE if any(len(rs) == 1 for rs in by_variant.values()) else "")
    return {"baseline": baseline, "failed": failed, "rows": compare_groups(by_variant, baseline, metrics),
            "note": note, **run_checks(by_variant)}


def comparison_frame(result: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(result["rows"])
