"""The regression gate: is CURRENT significantly worse than BASELINE by more than a bound?"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from golfprof.errors import ConfigError
from golfprof.profiler.rundir import write_json

from . import stats
from .health import throttle_notes
from .samples import RunSamples, higher_is_better, load_run


def parse_bound(text: str) -> float:
    """'5%' or '5' -> 5.0 (percent of the baseline value)."""
    t = text.strip().removesuffix("%")
    try:
        value = float(t)
    except ValueError:
        raise ConfigError(f"--max-increase {text!r}: expected a percentage such as 5%") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"--max-increase {text!r} must be a finite percentage >= 0 (inf would disable the gate)")
    return value


def check_comparable(current: RunSamples, baseline: RunSamples) -> None:
    diffs = [k for k in current.fingerprint if current.fingerprint[k] != baseline.fingerprint.get(k)]
    if diffs:
        k = diffs[0]
        raise ConfigError(f"runs are not comparable: {k} is {current.fingerprint[k]!r} in {current.source} "
                          f"but {baseline.fingerprint.get(k)!r} in {baseline.source}")


def gate_metric(current: RunSamples, baseline: RunSamples, metric: str, bound_pct: float) -> dict[str, Any]:
    """Regression = worse than baseline·(1 ± bound), significantly when per-step samples exist."""
    hib = higher_is_better(metric)
    a, b = baseline.values(metric), current.values(metric)
    for arr, run in ((a, baseline), (b, current)):
        if len(arr) == 0:
            raise ConfigError(f"metric {metric} is not recorded in {run.source}")
        if not np.isfinite(arr).all():  # NaN compares false with every bound: the gate would pass unseen
            raise ConfigError(f"metric {metric} is not finite in {run.source} ({int((~np.isfinite(arr)).sum())} "
                              "value(s) NaN or inf): a gate needs finite figures")
    base = float(np.median(a))
    sign = -1.0 if hib else 1.0  # positive = worse
    limit = bound_pct / 100 * abs(base)
    out: dict[str, Any] = {"metric": metric, "baseline": base, "current": float(np.median(b)),
                           "higher_is_better": hib, "bound_pct": bound_pct}
    if len(a) > 1 and len(b) > 1:
        d = stats.compare([a], [b])
        worse_lo = min(sign * d.lo, sign * d.hi)
        out.update(change_pct=sign * d.rel_pct, worse_ci=[worse_lo, max(sign * d.lo, sign * d.hi)],
                   test=d.method, p_value=d.p_value)
        out["regressed"] = bool(worse_lo > limit)
        worse_hi = max(sign * d.lo, sign * d.hi)
        out["why"] = (f"{metric} worse by {sign * d.diff:+.4g} (95% CI {worse_lo:+.4g}..{worse_hi:+.4g}); "
                      f"bound {limit:.4g} ({bound_pct:g}% of {base:.4g})")
    else:
        worse = sign * (float(b[0]) - base)
        out.update(change_pct=100 * worse / base if base else math.nan, test="single values (no per-step samples)")
        out["regressed"] = bool(worse > limit)
        out["why"] = (f"{metric} worse by {worse:+.4g}; bound {limit:.4g} ({bound_pct:g}% of {base:.4g}); "
                      "no samples to test significance")
    return out


def regress(current_path: Path, baseline_path: Path, metrics: list[str], bound_pct: float) -> dict[str, Any]:
    current, baseline = load_run(current_path), load_run(baseline_path)
    check_comparable(current, baseline)
    results = [gate_metric(current, baseline, m, bound_pct) for m in metrics]
    return {"current": current.source, "baseline": baseline.source, "regressed": any(r["regressed"] for r in results),
            "metrics": results,  # a GPU that throttled on either side is said, not judged (the exit code stays)
            "throttled": throttle_notes({"current": current.summary, "baseline": baseline.summary})}


def _refuse_non_finite(source: str, summary: dict[str, Any], samples: dict[str, list[float]]) -> None:
    """A baseline with NaN or inf would gate nothing (every comparison with it is false): refused, named."""
    bad = [k for k, v in summary.items() if isinstance(v, float) and not math.isfinite(v)]
    bad += [f"{k} (a per-step sample)" for k, v in samples.items() if any(not math.isfinite(x) for x in v)]
    if bad:
        raise ConfigError(f"{source}: {', '.join(bad)} not finite: a baseline needs finite figures")


def save_baseline(run_paths: list[Path], out: Path) -> dict[str, Any]:
    """A committed baseline: the runs' summaries and per-step samples, concatenated per metric."""
    runs = [load_run(p) for p in run_paths]
    for r in runs[1:]:
        check_comparable(r, runs[0])
    samples: dict[str, list[float]] = {}
    for r in runs:
        for k, v in r.samples.items():
            samples.setdefault(k, []).extend(float(x) for x in v)
    data = {"golfprof_baseline": 1, "sources": [r.source for r in runs], "fingerprint": runs[0].fingerprint,
            "summary": runs[0].summary, "samples": samples}
    _refuse_non_finite(runs[0].source, runs[0].summary, samples)
    write_json(out, data)
    return data

