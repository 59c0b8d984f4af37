"""`golfprof bench overhead`: what phase marks cost: interleaved marked/unmarked steps in one process, plus a per-range
micro-benchmark.

Separate runs of the same configuration differed by up to 10% on one H100 (GPU clocks, machine),
which swamps a 1% question, so marked and unmarked steps alternate on one compiled model and the
estimate is the median of paired differences.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Callable

import torch

from golfprof.ablations.run import RunSpec, default_warmup, ensure_data, resolve_device
from golfprof.model.prefetch import close_loader, make_loader
from golfprof.model.train import DistInfo, Trainer
from golfprof.profiler.phases import UNMARKED, Marker, PhaseClock
from golfprof.profiler.rundir import environment


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def per_range_cost_us(device: torch.device, n: int = 20000) -> dict[str, float]:
    """Mean cost of entering and leaving one phase with no profiler attached."""
    out: dict[str, float] = {}
    for label, marker in (("unmarked", UNMARKED), ("marks_only", Marker(marks=True)),
                          ("marks_and_timers", Marker(PhaseClock(device), marks=True))):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            with marker("golfprof/bench/range"):
                pass
        _sync(device)
        out[label] = (time.perf_counter() - t0) / n * 1e6
        marker.clock.collect()
    return out


def interleaved_overhead(step: Callable[[int], Any], marker: Marker, clock: PhaseClock,
                         device: torch.device, warmup: int, pairs: int) -> dict[str, Any]:
    """Alternate unmarked / marked steps (marks and timers toggled together) and compare."""
    times: dict[str, list[float]] = {"marked": [], "unmarked": []}
    ranges_per_step: list[int] = []
    for i in range(warmup + 2 * pairs):
        marked = i % 2 == 1
        marker.marks = marked
        clock.enabled = marked
        _sync(device)
        t0 = time.perf_counter()
        step(i)
        _sync(device)
        ms = (time.perf_counter() - t0) * 1e3
        n = len(clock.collect())
        if i >= warmup:
            times["marked" if marked else "unmarked"].append(ms)
            if marked:
                ranges_per_step.append(n)
    diffs = [m - u for u, m in zip(times["unmarked"], times["marked"])]
    base = statistics.median(times["unmarked"])
    lo, hi, coverage = median_interval(diffs)
    return {
        "pairs": pairs,
        "marked_ms_median": statistics.median(times["marked"]),
        "unmarked_ms_median": base,
        "paired_diff_ms_median": statistics.median(diffs),
        "overhead_pct": 100 * statistics.median(diffs) / base,
        "overhead_pct_interval": [100 * lo / base, 100 * hi / base],
        "interval_confidence": coverage,
        "ranges_per_step": statistics.median(ranges_per_step),
        "marked_ms": times["marked"],
        "unmarked_ms": times["unmarked"],
    }

def median_interval(values: list[float], conf: float = 0.95) -> tuple[float, float, float]:
    """Distribution-free interval of a median: the order statistics at binomial(n, 1/2) quantiles, since step-time
    differences are skewed (a neighbour's burst), not normal. Returns (lo, hi, actual coverage); with too few
    values for ``conf`` it is the full range and its smaller coverage."""
    from scipy.stats import binom

    x, n = sorted(values), len(values)

    def coverage(k: int) -> float:  # of x[k]..x[n-1-k]: the median is below x[k] when at most k values are
        return float(1 - 2 * binom.cdf(k, n, 0.5))

    k = 0
    while k + 1 < n - 1 - (k + 1) and coverage(k + 1) >= conf:
        k += 1
    return x[k], x[n - 1 - k], coverage(k)


NOISY_SPREAD_PCT = 10.0  # unmarked steps' IQR over their median: beyond this, the steps are not alike enough
NOISY_INTERVAL_PCT = 5.0  # width of the overhead's interval, in points of %: wider says nothing about a 1% cost


def noise(result: dict[str, Any], load: float | None, cpus: int | None) -> list[str]:
    """Why this overhead figure means nothing, if it does not: an oversubscribed machine, unmarked steps that
    differ among themselves, or an interval too wide for the percent-level question (empty: trust it)."""
    why = []
    if load is not None and cpus and load > cpus:
        why.append(f"load average {load:.1f} on {cpus} CPUs: other work competes for the cores being timed")
    u = sorted(result["unmarked_ms"])
    if len(u) >= 4:
        q1, q3 = u[len(u) // 4], u[(3 * len(u)) // 4]
        spread = 100 * (q3 - q1) / result["unmarked_ms_median"]
        if spread > NOISY_SPREAD_PCT:
            why.append(f"unmarked steps spread {spread:.0f}% (IQR over median), above {NOISY_SPREAD_PCT:g}%")
    lo, hi = result["overhead_pct_interval"]
    if hi - lo > NOISY_INTERVAL_PCT:
        why.append(f"the overhead's {100 * result['interval_confidence']:.0f}% interval {lo:+.1f}%..{hi:+.1f}% "
                   f"is wider than {NOISY_INTERVAL_PCT:g} points; run more --pairs on a quiet machine")
    return why


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def overhead(spec: RunSpec, pairs: int) -> dict[str, Any]:
    run = spec.run
    run.validate(1)
    device = resolve_device(spec.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    train_pattern, _ = ensure_data(spec, run, 0)
    clock = PhaseClock(device)
    marker = Marker(clock, marks=True)
    trainer = Trainer(run, device, DistInfo(), marker)
    loader = make_loader(run.toggles.loader, train_pattern, run.train.seq_len, run.train.micro_batch_seqs,
                         trainer.grad_accum, 1, 0, device)
    warmup = spec.warmup_steps if spec.warmup_steps is not None else 2 * default_warmup(run, device)
    load_before = _load()
    try:
        result = interleaved_overhead(lambda i: trainer.step(i, loader), marker, clock, device, warmup, pairs)
    finally:
        close_loader(loader)
    load = max((v for v in (load_before, _load()) if v is not None), default=None)
    env = environment(1, "none")
    return {"benchmark": "phase_overhead", "device": env["device"], "torch": env["torch"],
            "git_revision": env["git_revision"], "command": spec.command, "variant": run.variant,
            "preset": run.preset, "warmup_steps": warmup, **result,
            "load_average": load, "cpus": os.cpu_count(), "noise": noise(result, load, os.cpu_count()),
            "per_range_us_no_profiler": per_range_cost_us(device)}
