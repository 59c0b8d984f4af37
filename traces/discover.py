"""PATH -> per-rank trace files, grouped into profiling windows, with mixed runs refused.

PATH is a golfprof run directory (traces under ``trace/``), a folder of per-rank traces, or one
trace file. A file's rank comes from Kineto's ``distributedInfo.rank``, else golfprof's metadata,
else a ``rank<N>`` in its name. Only the header (the keys before ``traceEvents``) is read here.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from golfprof.profiler.rundir import CONFIG, ENV, SUMMARY, TRACE_GLOB, RunDir

from .load import TraceError, read_header

_RANK_IN_NAME = re.compile(r"rank[-_]?(\d+)", re.IGNORECASE)
_NOT_TRACES = {CONFIG, ENV, SUMMARY}  # a run directory's own JSON files, when it has no trace folder


@dataclass(frozen=True)
class TraceFile:
    path: Path
    rank: int
    world_size: int | None
    run: str | None  # identity of the golfprof run that wrote it (variant + config), if known
    variant: str | None
    rank_known: bool = True  # False: a lone file that records no rank (analysed as rank 0, shown as '?')
    run_id: str | None = None  # which run of that config: one id for all its ranks and windows (golfprof metadata)
    started: str | None = None  # that run's recorded start (env.json's "started")


@dataclass(frozen=True)
class Discovery:
    windows: list[dict[int, TraceFile]]  # one rank -> file map per profiling window
    warnings: list[str]


def _candidates(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise TraceError(f"{path}: no such file or directory")
    traces = RunDir(path).trace_dir
    folder = traces if traces.is_dir() else path
    found = sorted(p for p in folder.glob(TRACE_GLOB) if p.is_file())
    if not found:
        found = sorted(
            p for p in folder.iterdir()
            if p.is_file() and p.name.endswith((".json", ".json.gz")) and p.name not in _NOT_TRACES
        )
    if not found:
        raise TraceError(f"{path}: no trace files (*.json, *.json.gz) found")
    return found


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _describe(path: Path, header: dict[str, Any], only_file: bool) -> TraceFile:
    dist = header.get("distributedInfo") if isinstance(header.get("distributedInfo"), dict) else {}
    gp = header.get("golfprof") if isinstance(header.get("golfprof"), dict) else {}
    rank = _int(dist.get("rank"))
    if rank is None:
        rank = _int(gp.get("rank"))
    world = _int(dist.get("world_size")) or _int(gp.get("world_size"))
    known = True
    if rank is None:
        m = _RANK_IN_NAME.search(path.name)
        # a lone trace of no recorded world is one process's: rank 0; of a world of several, an unknown rank
        rank, known = (int(m.group(1)), True) if m else (0 if only_file else None, not (world or 1) > 1)
    if rank is None:
        raise TraceError(f"{path}: cannot tell its rank (no distributedInfo.rank, no rank<N> in the name)")
    run = json.dumps([gp.get("variant"), gp.get("config")], sort_keys=True, default=str) if gp else None
    return TraceFile(path=path, rank=rank, world_size=world, run=run, variant=gp.get("variant"), rank_known=known,
                     run_id=gp.get("run_id") if isinstance(gp.get("run_id"), str) else None,
                     started=str(gp["run_started"]) if gp.get("run_started") else None)


def _ranges(nums: list[int]) -> str:
    out, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return ", ".join(out)


def _refuse_mixed(path: Path, described: list[TraceFile]) -> None:
    """Traces of different runs in one set would be averaged into nonsense: name the difference."""
    by_world = {f.world_size: f.path.name for f in described if f.world_size is not None}
    if len(by_world) > 1:
        detail = " vs ".join(f"world_size {w} ({n})" for w, n in sorted(by_world.items()))
        raise TraceError(f"{path}: mixed runs in one folder: {detail}")
    by_run = {f.run: f for f in described}
    if len(by_run) > 1:
        a, b = sorted(by_run.values(), key=lambda f: (f.run is not None, f.path.name))[:2]
        if a.run is None:
            why = f"{a.path.name} has no golfprof metadata, {b.path.name} has"
        elif a.variant != b.variant:
            why = f"golfprof variant {a.variant!r} ({a.path.name}) vs {b.variant!r} ({b.path.name})"
        else:
            why = f"golfprof config differs between {a.path.name} and {b.path.name}"
        raise TraceError(f"{path}: mixed runs in one folder: {why}")
    by_id: dict[str, TraceFile] = {}
    for f in sorted(described, key=lambda f: f.path.name):
        if f.run_id is not None:
            by_id.setdefault(f.run_id, f)
    if len(by_id) > 1:  # one configuration, run twice: windows of two runs are not windows of one
        a, b = list(by_id.values())[:2]
        raise TraceError(f"{path}: mixed runs in one folder: two runs of one configuration, {a.path.name} "
                         f"(run started {a.started}) and {b.path.name} (run started {b.started}); "
                         "pass one run's traces")


def _by_rank(path: Path, described: list[TraceFile]) -> dict[int, list[TraceFile]]:
    """Each rank's files, one per profiling window; several per rank need golfprof metadata to be one run's."""
    by_rank: dict[int, list[TraceFile]] = defaultdict(list)
    for f in described:
        by_rank[f.rank].append(f)
    several = [(r, fs) for r, fs in sorted(by_rank.items()) if len(fs) > 1]
    if several and not any(f.run is not None for f in described):
        r, fs = several[0]
        raise TraceError(
            f"{path}: {len(fs)} traces for rank {r} ({', '.join(f.path.name for f in fs[:3])}) "
            "and no golfprof metadata to tell windows of one run from mixed runs; pass one trace or folder per run"
        )
    return by_rank


def _missing_ranks(path: Path, described: list[TraceFile], ranks: set[int]) -> str | None:
    """The ranks a world lacks: bad input for a golfprof run's set of several files, else a warning (returned)."""
    worlds = {f.world_size for f in described if f.world_size is not None}
    if not worlds:
        return None
    world = worlds.pop()
    missing = sorted(set(range(world)) - ranks)
    if not missing:
        return None
    found = f"world_size {world}, found {len(ranks)}"
    # golfprof writes every rank's trace, so a gap in its set is a lost rank: bad input. Elsewhere tracing a
    # few ranks of a large job is common practice, and a single file is one rank by choice: a warning.
    if len(described) > 1 and any(f.run is not None for f in described):
        raise TraceError(f"{path}: ranks missing from the set: {_ranges(missing)} ({found}); "
                         "pass a folder with every rank's trace, or one trace file")
    return f"ranks missing from the set: {_ranges(missing)} ({found})"


def discover(path: Path) -> Discovery:
    """Find and group the traces under PATH; raises TraceError for mixed or ambiguous sets."""
    path = Path(path)
    files = _candidates(path)
    described = [_describe(p, read_header(p), len(files) == 1) for p in files]
    _refuse_mixed(path, described)
    by_rank = _by_rank(path, described)
    n_windows = max(len(v) for v in by_rank.values())
    warnings = []
    uneven = sorted(r for r, fs in by_rank.items() if len(fs) != n_windows)
    if uneven:
        warnings.append(f"ranks {_ranges(uneven)} lack traces for some of the {n_windows} profiling windows")
    windows = [{r: fs[w] for r, fs in sorted(by_rank.items()) if w < len(fs)} for w in range(n_windows)]
    lone = described[0] if len(described) == 1 and not described[0].rank_known else None
    if lone is not None:
        of = f" of a world of {lone.world_size}" if lone.world_size else ""
        warnings.append(f"{lone.path.name}: the trace records no rank (no distributedInfo.rank, no rank<N> in its "
                        f"name): analysed as the one trace{of}")
    else:
        missing = _missing_ranks(path, described, set(by_rank))
        warnings += [missing] if missing else []
    unfinished = _unfinished(path)
    return Discovery(windows=windows, warnings=warnings + ([unfinished] if unfinished else []))


def _unfinished(path: Path) -> str | None:
    """A run directory without summary.json never finished (stopped, killed or failed): its traces are what it
    wrote before that, so the user should know before reading figures from them."""
    rd = RunDir(path)
    if not path.is_dir() or not rd.is_unfinished():
        return None
    return (f"{path}: this run never finished (no {SUMMARY}: it was stopped, killed or failed); these are the "
            "traces it wrote before that, and its step timers may be missing or partial")
