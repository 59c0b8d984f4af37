"""Stuck ranks: a heartbeat file per spawned rank, and the launcher's watch over them.

A rank stopped (``kill -STOP``), deadlocked, or waiting forever on a peer in a collective makes no progress:
its main thread enters no phase. Each rank's heartbeat reports the main thread's progress (the current-phase
marker of ``profiler.phases``: the open phase, the step, the time of the last change; before the first phase,
a coarse stage such as ``start-up``) to a file in the launch folder; the launcher reads them while it waits, and
ends the job when one rank has made no progress for the stated time, naming the rank and where it is stuck.
The file is written by a small thread, but only what the main thread did moves its time on; a stopped process
writes nothing at all. Torch-free, so a rank starts its heartbeat before its heavy imports.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

HEARTBEAT_DIR = "GOLFPROF_HEARTBEAT_DIR"  # set by the launcher for its ranks: the folder of their heartbeat files
WRITE_EVERY_S = 0.25  # how often a rank's heartbeat thread looks at its progress
POLL_EVERY_S = 0.25  # how often the launcher looks at the heartbeats
START_UP = "start-up"


def heartbeat_path(folder: Path, rank: int) -> Path:
    return Path(folder) / f"rank{rank}.json"


class Heartbeat:
    """One rank's heartbeat: a daemon thread that rewrites ``rank<r>.json`` whenever the main thread moved on.

    Progress is a phase entered or left (``phases.PROGRESS``), a stage set by the rank's own code, or, while the
    rank is still importing its modules, a module loaded: what the main thread alone can cause."""

    def __init__(self, folder: Path, rank: int) -> None:
        self.path = heartbeat_path(folder, rank)
        self.rank = rank
        self._stage = START_UP
        self._stage_at = time.monotonic()
        self._modules = len(sys.modules)
        self._modules_at = self._stage_at
        self._written_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="golfprof-heartbeat", daemon=True)

    def stage(self, name: str) -> None:
        """Main thread: a coarse stage outside any phase (joining the process group, setting up, finishing)."""
        self._stage, self._stage_at = name, time.monotonic()

    def record(self) -> dict[str, Any]:
        """What the main thread is doing now, and since when (monotonic seconds, one clock for the host)."""
        phases = sys.modules.get("golfprof.profiler.phases")
        progress = getattr(phases, "PROGRESS", None)
        at, where, step = self._stage_at, self._stage, None
        if progress is not None and progress.entries:
            step = progress.steps - 1 if progress.steps else None
            if progress.at >= self._stage_at:  # the phases moved on since the last stage was set
                at, where = progress.at, progress.current() or self._stage
        if len(sys.modules) != self._modules:  # importing: loading a module is progress, wherever it happens
            self._modules, self._modules_at = len(sys.modules), time.monotonic()
        return {"rank": self.rank, "pid": os.getpid(), "at": max(at, self._modules_at), "phase": where, "step": step}

    def write(self) -> None:
        rec = self.record()
        if rec["at"] == self._written_at:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(rec))
        os.replace(tmp, self.path)
        self._written_at = rec["at"]

    def _run(self) -> None:
        while not self._stop.wait(WRITE_EVERY_S):
            try:
                self.write()
            except OSError:  # the launch folder is gone (the job is being torn down): nothing left to tell
                return

    def start(self) -> Heartbeat:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.write()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()


_current: Heartbeat | None = None


def start_heartbeat(rank: int, environ: dict[str, str] | None = None) -> Heartbeat | None:
    """This rank's heartbeat, when its launcher watches (``GOLFPROF_HEARTBEAT_DIR`` set); else None."""
    global _current
    folder = (os.environ if environ is None else environ).get(HEARTBEAT_DIR)
    if not folder or _current is not None:
        return _current
    _current = Heartbeat(Path(folder), rank).start()
    return _current


def stage(name: str) -> None:
    """Mark a stage of this rank's main thread on its heartbeat (nothing when no launcher watches)."""
    if _current is not None:
        _current.stage(name)


class Watch:
    """The launcher's side: the heartbeats of ``nproc`` ranks, and whether one has stalled for ``stall_s``."""

    def __init__(self, folder: Path, nproc: int, stall_s: float) -> None:
        self.folder, self.nproc, self.stall_s = Path(folder), nproc, stall_s
        self.started = time.monotonic()

    def _read(self, rank: int) -> dict[str, Any] | None:
        try:
            rec = json.loads(heartbeat_path(self.folder, rank).read_text())
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) and isinstance(rec.get("at"), (int, float)) else None

    def stuck(self, now: float | None = None) -> str | None:
        """``rank N made no progress for S s (stuck in <phase>)`` for the rank idle longest beyond the stated
        time (a rank waiting on a stopped peer stalls later than the peer), else None."""
        now = time.monotonic() if now is None else now
        worst: tuple[float, int, str] | None = None
        for rank in range(self.nproc):
            rec = self._read(rank)
            at = max(rec["at"], self.started) if rec else self.started
            where = str(rec.get("phase") or START_UP) if rec else START_UP
            if rec and rec.get("step") is not None:
                where += f", step {rec['step']}"
            idle = now - at
            if idle > self.stall_s and (worst is None or idle > worst[0]):
                worst = (idle, rank, where)
        if worst is None:
            return None
        return f"rank {worst[1]} made no progress for {self.stall_s:g} s (stuck in {worst[2]})"
