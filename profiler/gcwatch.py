"""Python garbage-collection pauses per step: a collection that lands in a step stalls whichever phase runs.

A step's phase timers show that a phase was slow; this says whether the interpreter, not the phase's
work, was the cause (``gc_ms`` in the step table). ``gc.freeze()`` after the warm-up moves the
compiled model's many objects out of the collector's reach, so later full collections stay short.
"""

from __future__ import annotations

import gc
import time
from typing import Any


class GcWatch:
    """Accumulates the wall time of every collection between two ``take()`` calls."""

    def __init__(self) -> None:
        self._start = 0.0
        self._ms = 0.0
        self._count = 0
        self._oldest = -1

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self._ms += (time.perf_counter() - self._start) * 1e3
            self._count += 1
            self._oldest = max(self._oldest, int(info.get("generation", 0)))

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)
        # End freeze_after_warmup's freeze with the timed steps: objects left frozen are never freed at exit,
        # and native extensions then print pages of "nanobind: leaked instances" (Triton's, on every CPU run).
        gc.unfreeze()

    def take(self) -> dict[str, Any]:
        """{gc_ms, gc_collections, gc_oldest_generation (-1: none)} since the last take."""
        out = {"gc_ms": self._ms, "gc_collections": self._count, "gc_oldest_generation": self._oldest}
        self._ms, self._count, self._oldest = 0.0, 0, -1
        return out


def freeze_after_warmup() -> None:
    """Collect once, then freeze every surviving object (compiled graphs, modules) out of later collections."""
    gc.collect()
    gc.freeze()
