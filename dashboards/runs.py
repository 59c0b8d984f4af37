"""PATH... -> the run directories a dashboard draws, each read once (the only file reading here).

A PATH is a run directory (it has summary.json), a matrix folder (matrix.json names its runs and
baseline), or a folder holding either, one or two levels down (``runs/`` with matrices inside).
Failed or interrupted runs are skipped with a note, never drawn as zeros.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from golfprof.errors import ConfigError, DashboardError, TraceError
from golfprof.profiler.record import RunRecord
from golfprof.profiler.rundir import SUMMARY, MatrixDir, RunDir, read_json
from golfprof.results.samples import RunSamples, run_samples

_MAX_DEPTH = 2
T = TypeVar("T")


@dataclass
class Run:
    path: Path
    name: str  # unique display name
    record: RunRecord
    env: dict[str, Any]
    started: float  # seconds since the epoch
    samples: RunSamples
    matrix_baseline: str | None = None  # the baseline variant of the matrix holding this run
    matrix: Path | None = None  # the matrix folder holding this run

    @property
    def summary(self) -> dict[str, Any]:
        """The record as summary.json holds it."""
        return self.record.to_dict()

    @property
    def git(self) -> str | None:
        rev = self.env.get("git_revision")
        return rev[:10] if isinstance(rev, str) and rev else None

    def traces(self) -> list[Path]:
        return RunDir(self.path).traces()


@dataclass
class Found:
    runs: list[Run]
    notes: list[str] = field(default_factory=list)
    trace_sets: list[TraceSet] = field(default_factory=list)  # PATHs that are traces, not golfprof runs
    comparisons: dict[Path, dict[str, Any]] = field(default_factory=dict)  # matrix folder -> its comparison.json


@dataclass
class TraceSet:
    """A PATH ``golfprof analyze`` takes that is no golfprof run: a folder of Kineto traces or one trace
    file, from any trainer. The dashboard draws its timeline and overlap; it has no step timers."""

    path: Path
    name: str


def _trace_set(p: Path) -> TraceSet | None:
    """``p`` as analyze reads it, when it holds traces (discover finds them) and is no run, matrix or folder of runs."""
    from golfprof.traces.discover import discover

    try:
        discover(p)
    except TraceError:
        return None
    return TraceSet(path=p, name=p.name)


def _json(path: Path, read: Callable[[], T]) -> T:
    """``read()`` (a RunDir/MatrixDir reader of ``path``), its failures worded for the dashboard."""
    try:
        return read()
    except OSError as e:
        raise DashboardError(f"{path}: cannot read ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DashboardError(f"{path}: not valid JSON ({e})") from None
    except ValueError as e:  # valid JSON, but not an object, or a mistyped field (the readers name the file)
        raise DashboardError(str(e)) from None


def started(path: Path, env: dict[str, Any]) -> float:
    """Run start: env.json's record, else the stamp golfprof puts in the folder name, else when
    config.json was written (a file time, which copies and checkouts reset)."""
    recorded = env.get("started")
    if isinstance(recorded, str):
        try:
            return dt.datetime.fromisoformat(recorded).timestamp()
        except ValueError:
            pass
    rd = RunDir(path)
    stamp = rd.stamp()
    if stamp is not None:
        return stamp.timestamp()
    return (rd.config if rd.config.exists() else path).stat().st_mtime


def _read_run(path: Path, matrix_baseline: str | None, matrix: Path | None = None) -> Run:
    rd = RunDir(path)
    record = _json(rd.summary, rd.read_record)
    if record.ms_per_step is None:
        raise DashboardError(f"{rd.summary}: no ms_per_step (not a finished golfprof run)")
    env = _json(rd.env, rd.read_env) if rd.env.exists() else {}
    try:
        samples = run_samples(rd, record)
    except (ConfigError, KeyError, OSError, ValueError) as e:
        raise DashboardError(f"{path}: cannot read its step samples ({e})") from None
    return Run(path=path, name=path.name, record=record, env=env, started=started(path, env), samples=samples,
               matrix_baseline=matrix_baseline, matrix=matrix)


def stored_comparison(folder: Path) -> dict[str, Any] | None:
    """A matrix's comparison.json (what `golfprof ablate` printed), None when it has none or it is unreadable:
    the dashboard then computes the same rows itself."""
    path = MatrixDir(folder).comparison_json
    try:
        data = read_json(path) if path.is_file() else None
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and isinstance(data.get("rows"), list) and isinstance(data.get("baseline"), str)
    return data if ok else None


def _matrix(folder: Path, notes: list[str]) -> list[Run]:
    matrix = MatrixDir(folder)
    state = _json(matrix.state, matrix.read_state)
    runs_state = state.get("runs")
    if not isinstance(runs_state, dict):
        raise DashboardError(f"{matrix.state}: no runs")
    baseline = state.get("baseline") if isinstance(state.get("baseline"), str) else None
    out = []
    for name, info in runs_state.items():  # execution order: interleaved A B A B
        status = info.get("status") if isinstance(info, dict) else None
        if status != "ok" or not matrix.run_named(name).is_complete():
            why = info.get("error", status) if isinstance(info, dict) else "unknown"
            notes.append(f"{folder.name}/{name}: skipped ({why})")
            continue
        out.append(_read_run(matrix.run_named(name).path, baseline, folder))
    return out


def _expand(path: Path, depth: int, notes: list[str]) -> list[Run]:
    if RunDir(path).is_complete():
        return [_read_run(path, None)]
    if MatrixDir(path).is_matrix():
        return _matrix(path, notes)
    if depth >= _MAX_DEPTH:
        return []
    out = []
    for child in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if RunDir(child).is_set_aside or RunDir(child).is_unfinished():
            notes.append(f"{child}: skipped (no summary.json: an interrupted or failed run)")
            continue
        out += _expand(child, depth + 1, notes)
    return out


def find_runs(paths: list[Path]) -> Found:
    """Every finished run under PATHs, each once, in argument order (folders in name order); a PATH with no
    run but with traces (as ``golfprof analyze`` takes them) is a trace set."""
    if not paths:
        raise DashboardError("no PATH given: pass run directories, matrix folders or folders of runs")
    notes: list[str] = []
    runs: list[Run] = []
    trace_sets: list[TraceSet] = []
    for p in paths:
        p = Path(p)
        if p.is_file() and p.name == SUMMARY:
            p = p.parent
        if not p.exists():
            raise DashboardError(f"{p}: no such file or directory")
        try:
            found = _expand(p, 0, notes) if p.is_dir() else []
        except PermissionError as e:
            raise DashboardError(f"{p}: cannot read ({e.strerror})") from None
        if not found:
            traces = _trace_set(p)
            if traces is None:
                raise DashboardError(f"{p}: no run directories (folders with a summary.json) and no Kineto traces "
                                     "found")
            trace_sets.append(traces)
        runs += found
    seen: set[Path] = set()
    unique = []
    for r in runs:
        key = r.path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(r)
    names = [r.name for r in unique]
    for r in unique:
        if names.count(r.name) > 1:  # matrices reuse <variant>-r<k>: name the folder too
            r.name = f"{r.path.parent.name}/{r.path.name}"
    matrices = {r.matrix for r in unique if r.matrix is not None}
    stored = {m: c for m in sorted(matrices) if (c := stored_comparison(m)) is not None}
    return Found(unique, notes, trace_sets, stored)
