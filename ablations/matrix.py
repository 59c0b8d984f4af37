"""Ablation matrices: variants × repeats, interleaved, resumable, each run a fresh process group.

The matrix folder is keyed by the command's work (configs, world size, data), so re-running the
same command finds it, skips complete runs (those with a summary.json) and retries the rest. The
state file is rewritten atomically after every run, so killing the matrix loses at most the run
in flight; an interrupted run's folder is kept under an `.incomplete-N` name, never overwritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from golfprof.errors import Interrupted
from golfprof.profiler.rundir import MatrixDir

from .launch import spawn
from .ownership import claim
from .run import RunSpec

PREVIOUS_RUN_WAIT_S = 30.0  # how long a re-run waits for a killed run's processes to release its folder


def matrix_key(specs: dict[str, RunSpec], nproc: int) -> str:
    work = {name: {"config": s.config, "data": s.train_data, "device": s.device, "warmup": s.warmup_steps,
                   "profile": s.profile} for name, s in specs.items()}
    blob = json.dumps({"specs": work, "nproc": nproc}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def run_name(variant: str, repeat: int) -> str:
    return MatrixDir.run_name(variant, repeat)


def interleaved(variants: list[str], repeats: int) -> list[tuple[str, int]]:
    """A B A B ...: slow drift (clocks, thermals, neighbours) hits every variant alike."""
    return [(v, k) for k in range(repeats) for v in variants]


def load_state(matrix_dir: Path) -> dict[str, Any]:
    return MatrixDir(matrix_dir).read_state()


def run_matrix(specs: dict[str, RunSpec], repeats: int, nproc: int, matrix_dir: Path, baseline: str,
               on_event: Callable[[str, str, str | None], None] = lambda name, status, error: None,
               launcher: Callable[[RunSpec, int], tuple[int, str | None]] = spawn) -> dict[str, Any]:
    matrix_dir.mkdir(parents=True, exist_ok=True)
    mdir = MatrixDir(matrix_dir)
    writer = claim(mdir.lock)  # one live golfprof per matrix: a second one is refused, a dead one's lock is free
    state = mdir.read_state()
    state.update(variants=list(specs), repeats=max(repeats, state.get("repeats", 0)), nproc=nproc,
                 baseline=baseline)
    mdir.write_state(state)
    for variant, k in interleaved(list(specs), repeats):
        name = run_name(variant, k)
        run_dir = mdir.run(variant, k)
        # A killed matrix's ranks die with it, within moments: wait for them, never touch a folder they hold.
        previous = claim(run_dir.lock, wait_s=PREVIOUS_RUN_WAIT_S) if run_dir.path.exists() else None
        if run_dir.is_complete():
            if previous is not None:
                previous.close()
            state["runs"][name] = {"variant": variant, "repeat": k, "status": "ok"}
            on_event(name, "skipped (complete)", None)
            continue
        if run_dir.path.exists():
            run_dir.set_aside()
        if previous is not None:
            previous.close()
        spec = dataclasses.replace(specs[variant], run_dir=str(run_dir.path), quiet=True,
                                   extra={**specs[variant].extra, "matrix": matrix_dir.name, "repeat": k})
        try:
            code, error = launcher(spec, nproc)
        except Interrupted as e:
            done = sum(1 for r in state["runs"].values() if r["status"] == "ok")
            raise Interrupted(f"{e}; matrix {matrix_dir}: re-run the same command to resume "
                              f"({done} complete run(s) are kept, this one starts again)") from None
        ok = code == 0 and run_dir.is_complete()
        state["runs"][name] = {"variant": variant, "repeat": k, "status": "ok" if ok else "failed",
                               **({} if ok else {"error": error or f"exit code {code}", "returncode": code})}
        mdir.write_state(state)
        on_event(name, "ok" if ok else "failed", None if ok else state["runs"][name]["error"])
    writer.close()
    return state
