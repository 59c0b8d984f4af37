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

from golfprof.profiler.rundir import write_json

from .launch import spawn
from .run import RunSpec


def matrix_key(specs: dict[str, RunSpec], nproc: int) -> str:
    work = {name: {"config": s.config, "data": s.train_data, "device": s.device, "warmup": s.warmup_steps,
                   "profile": s.profile} for name, s in specs.items()}
    blob = json.dumps({"specs": work, "nproc": nproc}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def run_name(variant: str, repeat: int) -> str:
    return f"{variant}-r{repeat}"


def interleaved(variants: list[str], repeats: int) -> list[tuple[str, int]]:
    """A B A B ...: slow drift (clocks, thermals, neighbours) hits every variant alike."""
    return [(v, k) for k in range(repeats) for v in variants]


def load_state(matrix_dir: Path) -> dict[str, Any]:
    path = matrix_dir / "matrix.json"
    if path.exists():
        return json.loads(path.read_text())
    return {"runs": {}}


def _set_aside(run_dir: Path) -> None:
    for i in range(1, 1000):
        target = run_dir.with_name(f"{run_dir.name}.incomplete-{i}")
        if not target.exists():
            run_dir.rename(target)
            return


def run_matrix(specs: dict[str, RunSpec], repeats: int, nproc: int, matrix_dir: Path, baseline: str,
               on_event: Callable[[str, str, str | None], None] = lambda name, status, error: None,
               launcher: Callable[[RunSpec, int], tuple[int, str | None]] = spawn) -> dict[str, Any]:
    matrix_dir.mkdir(parents=True, exist_ok=True)
    state = load_state(matrix_dir)
    state.update(variants=list(specs), repeats=max(repeats, state.get("repeats", 0)), nproc=nproc,
                 baseline=baseline)
    write_json(matrix_dir / "matrix.json", state)
    for variant, k in interleaved(list(specs), repeats):
        name = run_name(variant, k)
        run_dir = matrix_dir / name
        if (run_dir / "summary.json").exists():
            state["runs"][name] = {"variant": variant, "repeat": k, "status": "ok"}
            on_event(name, "skipped (complete)", None)
            continue
        if run_dir.exists():
            _set_aside(run_dir)
        spec = dataclasses.replace(specs[variant], run_dir=str(run_dir), quiet=True,
                                   extra={**specs[variant].extra, "matrix": matrix_dir.name, "repeat": k})
        code, error = launcher(spec, nproc)
        ok = code == 0 and (run_dir / "summary.json").exists()
        state["runs"][name] = {"variant": variant, "repeat": k, "status": "ok" if ok else "failed",
                               **({} if ok else {"error": error or f"exit code {code}", "returncode": code})}
        write_json(matrix_dir / "matrix.json", state)
        on_event(name, "ok" if ok else "failed", None if ok else state["runs"][name]["error"])
    return state
