"""The profiler window and which steps count in the medians (no torch import: analyses use it)."""

from __future__ import annotations

from dataclasses import dataclass

from golfprof.errors import ConfigError


@dataclass(frozen=True)
class Window:
    wait: int
    warmup: int
    active: int

    @property
    def end(self) -> int:
        return self.wait + self.warmup + self.active

    @staticmethod
    def parse(text: str) -> "Window | None":
        """'WAIT,WARMUP,ACTIVE' (e.g. '5,1,3'); 'off' disables profiling."""
        if text.strip().lower() in ("off", "none", "0"):
            return None
        parts = text.split(",")
        try:
            w, u, a = (int(p) for p in parts)
        except ValueError:
            raise ConfigError(f"--profile-steps {text!r}: expected WAIT,WARMUP,ACTIVE (e.g. 5,1,3) or off") from None
        if w < 0 or u < 0 or a < 1:
            raise ConfigError(f"--profile-steps {text!r}: need WAIT>=0, WARMUP>=0, ACTIVE>=1")
        return Window(w, u, a)


def timed_steps(steps: int, warmup: int, window: Window | None, export_step: bool = False) -> set[int]:
    """Steps that count in the medians: after warm-up and, when others remain, outside the
    profiler window (profiling slows the steps it records). ``export_step``: nor the step after the window,
    which pays the trace's export where the profiler's step call runs inside the step's timer, as in a profiled
    script (measured on an H200: 1,902 ms against 590 at world 1; golfprof's trainer steps the profiler outside
    its step timer)."""
    timed = set(range(warmup, steps))
    if window is not None:
        unprofiled = timed - set(range(window.wait, window.end + int(export_step)))
        if unprofiled:
            return unprofiled
        if export_step:  # the window's steps are all that is left: still not the export's
            return (timed - {window.end}) or timed
    return timed
