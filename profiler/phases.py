"""Phase marks: one context manager that is an NVTX range, a Kineto `record_function` and an
always-on timer at once.

The names are a stable, documented contract: trace analyses, phase tables and regression
baselines key on them. Everything a step does lives under `golfprof/step`.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

try:  # nvtx is a hard dependency, but a broken install must not stop a CPU run
    import nvtx as _nvtx

    _nvtx_push: Callable[..., None] | None = _nvtx.push_range
    _nvtx_pop: Callable[[], None] | None = _nvtx.pop_range
except Exception:  # pragma: no cover - exercised only without the package
    _nvtx_push = _nvtx_pop = None

PREFIX = "golfprof/"
STEP = "golfprof/step"
DATA = "golfprof/step/data"
FORWARD = "golfprof/step/forward"
BACKWARD = "golfprof/step/backward"
GRAD_CLIP = "golfprof/step/grad_clip"
OPTIMIZER = "golfprof/step/optimizer"
RS_LAUNCH = "golfprof/step/optimizer/reduce_scatter_launch"
REPLICATED_ALLREDUCE = "golfprof/step/optimizer/replicated_allreduce"
ADAM = "golfprof/step/optimizer/adam"
MUON = "golfprof/step/optimizer/muon"
UPDATE_APPLY = "golfprof/step/optimizer/update_apply"
PLANTED_DELAY = "golfprof/step/optimizer/planted_delay"
EMA = "golfprof/step/ema"

DEFAULT_PHASE_REGEX = r"^golfprof/"


def bank_wait(bank: str) -> str:
    return f"{MUON}/{bank}/wait"


def bank_orthogonalize(bank: str) -> str:
    return f"{MUON}/{bank}/orthogonalize"


def bank_all_gather(bank: str) -> str:
    return f"{MUON}/{bank}/all_gather"


def documented_phases(banks: list[str], comm: str, world_size: int) -> list[str]:
    """Every phase name a step of this schedule emits (tests assert traces carry all of them)."""
    names = [STEP, DATA, FORWARD, BACKWARD, GRAD_CLIP, OPTIMIZER, ADAM, MUON, UPDATE_APPLY, EMA]
    distributed = world_size > 1
    if distributed:
        names.append(REPLICATED_ALLREDUCE)
    if distributed and comm == "explicit":
        names.append(RS_LAUNCH)
        for b in banks:
            names += [bank_wait(b), bank_orthogonalize(b), bank_all_gather(b)]
    else:
        names += [bank_orthogonalize(b) for b in banks]
    return names


class PhaseClock:
    """Always-on per-phase timing: CUDA events on a GPU, host clocks on the CPU.

    Events are only recorded during the step and resolved after it (``collect``), so the step
    itself gains no host synchronisation.
    """

    def __init__(self, device: torch.device, enabled: bool = True) -> None:
        self.cuda = device.type == "cuda"
        self.enabled = enabled
        self._open: list[tuple[str, object]] = []
        self._done: list[tuple[str, object, object]] = []

    def start(self, name: str) -> None:
        if not self.enabled:
            return
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self._open.append((name, ev))
        else:
            self._open.append((name, time.perf_counter_ns()))

    def stop(self) -> None:
        if not self.enabled:
            return
        name, start = self._open.pop()
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
        else:
            end = time.perf_counter_ns()
        self._done.append((name, start, end))

    def collect(self) -> list[tuple[str, float]]:
        """(phase, ms) for every range closed since the last call; syncs only on the last event."""
        done, self._done = self._done, []
        if not done:
            return []
        if self.cuda:
            done[-1][2].synchronize()  # type: ignore[union-attr]
            return [(n, float(s.elapsed_time(e))) for n, s, e in done]  # type: ignore[union-attr]
        return [(n, (e - s) / 1e6) for n, s, e in done]  # type: ignore[operator]


class _NullClock:
    enabled = False

    def start(self, name: str) -> None:
        pass

    def stop(self) -> None:
        pass

    def collect(self) -> list[tuple[str, float]]:
        return []


NULL_CLOCK = _NullClock()


class Marker:
    """Creates phase context managers; `marks=False` gives the unmarked baseline for overhead runs."""

    def __init__(self, clock: PhaseClock | _NullClock = NULL_CLOCK, marks: bool = True) -> None:
        self.clock = clock
        self.marks = marks

    def __call__(self, name: str) -> "_Phase":
        return _Phase(self, name)


class _Phase:
    __slots__ = ("m", "name", "rf")

    def __init__(self, m: Marker, name: str) -> None:
        self.m = m
        self.name = name
        self.rf = None

    def __enter__(self) -> None:
        m = self.m
        if m.marks:
            if _nvtx_push is not None:
                _nvtx_push(self.name)
            self.rf = torch.profiler.record_function(self.name)
            self.rf.__enter__()
        m.clock.start(self.name)

    def __exit__(self, *exc: object) -> None:
        m = self.m
        m.clock.stop()
        if m.marks:
            self.rf.__exit__(None, None, None)  # type: ignore[union-attr]
            if _nvtx_pop is not None:
                _nvtx_pop()


UNMARKED = Marker(NULL_CLOCK, marks=False)
