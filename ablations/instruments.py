"""What watches a training loop from around it: the phase timers' rows, the GC watch, per-step samplers (the
GPU's state), the profiler window, the progress bar and the caller's per-step hook, entered before the first step
and left after the last. The loop itself (ablations/run.py:train_loop) only steps, times and checks; it hands
each step here.
"""

from __future__ import annotations

import bisect
import contextlib
import statistics
import time
from typing import Any, Callable, Iterator, Protocol, Sequence

import pandas as pd
import torch

from golfprof.model.prefetch import close_loader
from golfprof.profiler.gcwatch import GcWatch, freeze_after_warmup
from golfprof.profiler.phases import PhaseClock

PHASE_COLUMNS = ["step", "rank", "phase", "ms"]


class Sampler(Protocol):
    """Something read once per step into the step's row (profiler/gpustate.py's GpuSampler: clocks, power)."""

    def sample(self) -> dict[str, Any]: ...


class Progress:
    """A rich progress bar with live ms/step and loss on rank 0; nothing elsewhere or when quiet.

    ms/step is the running median of the steps so far: the last step's time swings with every neighbour's
    burst on a loaded machine (5456 ms against a median of 188), and the median is what the summary reports.
    """

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        self.times: list[float] = []  # kept sorted, for the running median
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("{task.fields[info]}"), TimeRemainingColumn())
            self.task = self.bar.add_task("train", total=total, info="")
            self.bar.start()

    def label(self, loss: float, ms: float) -> str:
        """Record one step; the bar's text: the loss and the median ms/step so far."""
        bisect.insort(self.times, ms)
        return f"loss {loss:.4f}  {statistics.median(self.times):.1f} ms/step (median)"

    def update(self, step: int, loss: float, ms: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step + 1, info=self.label(loss, ms))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@contextlib.contextmanager
def closed(loader: Any) -> Iterator[Any]:
    """The loader, its background work stopped however the loop ends."""
    try:
        yield loader
    finally:
        close_loader(loader)


class Instruments:
    """The loop's instruments. ``with Instruments(...) as inst:`` starts the profiler window, the progress bar and
    the GC watch (in that order, as they always started) and stops them on the way out, however the loop ends;
    ``wall_s`` is the loop's wall time including that teardown (the profiler's export)."""

    def __init__(self, device: torch.device, rank: int, steps: int, clock: PhaseClock, profiler: Any | None,
                 show_progress: bool, on_step: Callable[[int, float, float], None] | None = None,
                 samplers: Sequence[Sampler] = ()) -> None:
        self.device, self.rank, self.steps, self.clock = device, rank, steps, clock
        self.profiler, self.show_progress, self.on_step, self.samplers = profiler, show_progress, on_step, samplers
        self.step_rows: list[dict[str, Any]] = []
        self.phase_rows: list[dict[str, Any]] = []
        self.wall_s: float | None = None

    def __enter__(self) -> Instruments:
        if self.profiler is not None:
            self.profiler.start()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.progress = Progress(self.steps, enabled=self.show_progress)
        self._t_start = time.perf_counter()
        self.gc = GcWatch()
        self.gc.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gc.__exit__()
        self.progress.close()
        if self.profiler is not None:
            self.profiler.stop()
        self.wall_s = time.perf_counter() - self._t_start

    def warmed_up(self) -> None:
        """Compiled now: collect once and freeze, so full collections stay out of the timed steps."""
        freeze_after_warmup()
        self.gc.take()

    def record(self, step: int, loss: float, ms: float, hyper: Any) -> None:
        """One finished step: its phase timers, its row (loss, wall ms, schedule, GC pauses, the samplers'
        readings), the profiler's step, the bar and the caller's hook."""
        for name, pms in self.clock.collect():
            self.phase_rows.append({"step": step, "rank": self.rank, "phase": name, "ms": pms})
        row = {"step": step, "rank": self.rank, "loss": loss, "ms": ms, "lr_mult": hyper.lr_mult,
               "momentum": hyper.momentum, **self.gc.take()}
        for sampler in self.samplers:
            row |= sampler.sample()
        self.step_rows.append(row)
        if self.profiler is not None:
            self.profiler.step()
        self.progress.update(step, loss, ms)
        if self.on_step is not None:
            self.on_step(step, loss, ms)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The steps and phases tables this rank writes."""
        return pd.DataFrame(self.step_rows), pd.DataFrame(self.phase_rows, columns=PHASE_COLUMNS)
