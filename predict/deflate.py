"""The profiler's CPU time taken out of a profiled GPU step before it is replayed.

The profiler slows every op's CPU side (``--record-shapes`` most). Where a phase is CPU-bound (DDP's hooks and
bucket copies, an optimizer of many small launches) its profiled steps launch later, the GPU idles between the
launches, and the replay, which starts no kernel before its measured start, keeps those gaps: a longer kernel on
a slower target GPU is absorbed by them where the real step would pay for it. Measured on an H200 playing rank 7
of 8: a ddp_banks run whose profiled steps ran 27.7% slower than its unprofiled ones by their timers predicted the
same step for 8xH100 as for 8xH200 (80.75 ms both).

So each profiled step's CPU clock is warped, phase by phase: every top-level phase's ranges shrink to the span its
own timers give in the unprofiled steps (a phase is never stretched), the time between phases is kept, and every
CPU instant (kernel launches, collective calls and waits, phase marks) moves with the warp. A kernel's measured
start, the earliest the replay lets it begin, moves as much earlier as its launch did: a launch-bound kernel is
then bound by its warped launch, a kernel queued behind its stream by the stream. The deflated step, replayed as
measured (collectives of no cost), is the measured step the prediction's delta is taken against.

On a GPU the timers are CUDA events on the compute stream (profiler/phases.py): a phase's span from the moment
the GPU reached its first mark to its last. Where the CPU starved the phase in the unprofiled steps the span holds
that starvation, so launches fitted into it are no faster than the real ones were; where the CPU ran ahead, the
launches only had to precede the kernels, which their stream holds back anyway. The warp therefore removes the
gaps the profiler added without removing gaps the unprofiled steps had.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from golfprof.profiler.names import is_top_level

from . import replay

Warp = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PhaseFit:
    """One top-level phase of one step: its traced CPU ms, its unprofiled timer ms, the factor applied (≤ 1)."""

    trace_ms: float
    timer_ms: float
    factor: float


def timer_medians(phases: pd.DataFrame, steps: list[int]) -> dict[str, float]:
    """Median per-step ms of each top-level phase over ``steps`` (a run's phase table: step, phase, ms; a phase
    run several times a step, such as a micro-batch's forward, summed within the step)."""
    mine = phases[phases["step"].isin(steps) & phases["phase"].map(is_top_level)]
    if mine.empty:
        return {}
    per_step = mine.groupby(["phase", "step"])["ms"].sum()
    return {str(p): float(v) for p, v in per_step.groupby(level="phase").median().items()}


def fits(ranges: list[tuple[str, float, float]], timer_ms: dict[str, float]) -> dict[str, PhaseFit]:
    """Each top-level phase with a timer: the ranges' total length in the trace (µs → ms) against the timer."""
    traced: dict[str, float] = {}
    for name, a, b in ranges:
        if is_top_level(name):
            traced[name] = traced.get(name, 0.0) + max(b - a, 0.0) / 1e3
    out = {}
    for name, ms in traced.items():
        if name in timer_ms and ms > 0:
            out[name] = PhaseFit(ms, timer_ms[name], min(1.0, timer_ms[name] / ms))
    return out


def warp(ranges: list[tuple[str, float, float]], factor: dict[str, float]) -> Warp:
    """The step clock's monotone piecewise-linear map: a top-level range [a, b] of factor f becomes
    [W(a), W(a) + f (b - a)]; time outside them keeps its length (so W is the identity up to the first)."""
    xs, ys = [0.0], [0.0]
    spans = sorted((a, b, factor.get(n, 1.0)) for n, a, b in ranges if is_top_level(n) and b > a)
    for a, b, f in spans:
        a = max(a, xs[-1])  # top-level phases tile the step; overlap would be a malformed trace: clip it
        if b <= a:
            continue
        ys.append(ys[-1] + (a - xs[-1]))
        xs.append(a)
        ys.append(ys[-1] + f * (b - a))
        xs.append(b)
    # beyond the last range the clock runs at its own pace, shifted by all the shrinking before it
    xs.append(xs[-1] + 1e15)
    ys.append(ys[-1] + 1e15)
    x, y = np.asarray(xs), np.asarray(ys)

    def w(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, float)
        out = np.interp(t, x, y)
        return np.where(np.isfinite(t), np.where(t < 0, t, out), t)  # before the step, and never (inf), kept

    return w


def deflate(role: replay.RoleStep, ranges: list[tuple[str, float, float]],
            phase_fits: dict[str, PhaseFit]) -> tuple[replay.RoleStep, list[tuple[str, float, float]]]:
    """The step with its CPU clock warped by ``phase_fits`` and replayed as measured; ``role`` itself where no
    phase shrinks. Its phase ranges move with it."""
    factor = {n: f.factor for n, f in phase_fits.items() if f.factor < 1.0}
    if not factor:
        return role, ranges
    w = warp(ranges, factor)
    launch = w(role.launch)
    last = role.last if role.last is not None else max([role.begin, *(role.start + role.dur)])
    moved = replace(role, launch=launch, start=role.start - (role.launch - launch), issue=w(role.issue),
                    wait=w(role.wait), last=last)
    tl = replay.replay_step([moved], np.zeros(len(role.issue))).roles[0]
    pred_last = max([role.begin, *tl.end])
    end_w, last_w = (float(v) for v in w(np.array([role.end, last])))
    # the step ends at the warped CPU end or its warped tail after the last kernel: for a step that ends in its sync
    # the tail is the sync's own; for one whose CPU ran on after its last kernel it errs long, by at most the part
    # of that kernel's duration the warp shrank as if it were CPU time
    end = max(end_w, pred_last + (end_w - last_w))
    out = replace(moved, start=tl.start, end=end, last=None)
    starts, ends = (w(np.array([r[k] for r in ranges], float)) for k in (1, 2))
    return out, [(n, float(a), float(b)) for (n, _, _), a, b in zip(ranges, starts, ends)]


def summary(fitted: list[tuple[dict[str, PhaseFit], float, float]]) -> dict | None:
    """``prediction.deflation``: per top-level phase, medians over the replayed steps of its traced and timed ms
    and the factor applied; the traced steps' length before and after (ms). ``fitted``: per step, its fits and
    its length in µs as traced and as deflated."""
    if not fitted:
        return None
    names = list(dict.fromkeys(n for fit, _, _ in fitted for n in fit))
    med = lambda xs: float(np.median(xs))  # noqa: E731
    phases = {n: {k: med([getattr(fit[n], k) for fit, _, _ in fitted if n in fit])
                  for k in ("trace_ms", "timer_ms", "factor")} for n in names}
    return {"phases": phases, "traced_ms": med([a for _, a, _ in fitted]) / 1e3,
            "deflated_ms": med([b for _, _, b in fitted]) / 1e3,
            "shrunk": [n for n, v in phases.items() if v["factor"] < 1.0]}
