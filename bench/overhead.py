"""`golfprof bench overhead`: what phase marks cost: interleaved marked/unmarked steps in one process, plus a per-range
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

from golfprof.ablations.run import RunSpec, default_warmup, ensure_data, resolve_device
from golfprof.model.data import DistributedLoader
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
    loader = DistributedLoader(train_pattern, run.train.seq_len, run.train.micro_batch_seqs,
                               trainer.grad_accum, pin_memory=device.type == "cuda")
    warmup = spec.warmup_steps if spec.warmup_steps is not None else 2 * default_warmup(run, device)
    result = interleaved_overhead(lambda i: trainer.step(i, loader), marker, clock, device, warmup, pairs)
    env = environment(1, "none")
    return {"benchmark": "phase_overhead", "device": env["device"], "torch": env["torch"],
            "git_revision": env["git_revision"], "command": spec.command, "variant": run.variant,
            "preset": run.preset, "warmup_steps": warmup, **result,
            "per_range_us_no_profiler": per_range_cost_us(device)}
