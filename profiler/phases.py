"""Phase marks: one context manager that is an NVTX range, a Kineto `record_function` and an
always-on timer at once. The names themselves live in `names.py` (no torch import there, so trace
analysis can use them cheaply).
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

from .names import (  # noqa: F401  (re-exported: the trainer and tests use phases.<NAME>)
    ADAM,
    ALL_BANKS,
    BACKWARD,
    DATA,
    DEFAULT_PHASE_REGEX,
    EMA,
    FORWARD,
    GRAD_CLIP,
    MUON,
    MUON_ALLREDUCE,
    OPTIMIZER,
    PLANTED_DELAY,
    PREFIX,
    REPLICATED_ALLREDUCE,
    RS_LAUNCH,
    STEP,
    UPDATE_APPLY,
    bank_all_gather,
    bank_orthogonalize,
    bank_wait,
    documented_phases,
)


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


class Progress:
    """The current-phase marker: what this process's main thread is doing. The open phases, a count of phase
    entries (steps: entries of STEP) and the monotonic time of the last change; the rank's heartbeat
    (golfprof.ablations.watchdog) reports them, so a launcher can tell a stuck rank from a slow one and name
    where it is stuck. Plain attribute updates: tens of nanoseconds per phase."""

    __slots__ = ("open", "entries", "steps", "at")

    def __init__(self) -> None:
        self.open: list[str] = []
        self.entries = 0
        self.steps = 0
        self.at = time.monotonic()

    def enter(self, name: str) -> None:
        self.open.append(name)
        self.entries += 1
        if name == STEP:
            self.steps += 1
        self.at = time.monotonic()

    def leave(self) -> None:
        if self.open:
            self.open.pop()
        self.at = time.monotonic()

    def current(self) -> str | None:
        """The innermost open phase (None between phases)."""
        return self.open[-1] if self.open else None


PROGRESS = Progress()


# Called as fn(entering, name) around every phase when registered (profiler/collectives.py keeps the
# current phase and the step boundaries from them); empty by default, so marks cost nothing more.
LISTENERS: list[Callable[[bool, str], None]] = []


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
        PROGRESS.enter(self.name)
        for fn in LISTENERS:
            fn(True, self.name)

    def __exit__(self, *exc: object) -> None:
        m = self.m
        for fn in LISTENERS:
            fn(False, self.name)
        PROGRESS.leave()
        m.clock.stop()
        if m.marks:
            self.rf.__exit__(None, None, None)  # type: ignore[union-attr]
            if _nvtx_pop is not None:
                _nvtx_pop()


UNMARKED = Marker(NULL_CLOCK, marks=False)
