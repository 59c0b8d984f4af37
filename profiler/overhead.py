"""What phase marks cost: interleaved marked/unmarked steps in one process, plus a per-range
micro-benchmark.

Separate runs of the same configuration differed by up to 10% on one H100 (GPU clocks, machine),
which swamps a 1% question, so marked and unmarked steps alternate on one compiled model and the
estimate is the median of paired differences.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch

from .phases import Marker, PhaseClock, UNMARKED


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
    return {
        "pairs": pairs,
        "marked_ms_median": statistics.median(times["marked"]),
        "unmarked_ms_median": base,
        "paired_diff_ms_median": statistics.median(diffs),
        "overhead_pct": 100 * statistics.median(diffs) / base,
        "ranges_per_step": statistics.median(ranges_per_step),
        "marked_ms": times["marked"],
        "unmarked_ms": times["unmarked"],
    }
