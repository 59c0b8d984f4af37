"""``golfprof analyze PATH``: the only place here that touches files and the terminal."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import typer
from rich.console import Console

from golfprof.profiler.names import DEFAULT_PHASE_REGEX

from .diagnose import diagnose
from .discover import TraceFile, discover
from golfprof.errors import TraceError

from .load import load_trace
from .report import render, to_json
from .summary import RankSummary, combine, summarize_rank


PARALLEL_MIN_BYTES = 4 << 20  # below this on disk, starting worker processes costs more than it saves


def _cpus() -> int:
    """CPUs this process may run on (a container's limit, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _summarize_file(tf: TraceFile, pattern: str, window: int) -> RankSummary:
    """Load one trace and reduce it to its summary, so at most one trace per process is in memory."""
    return summarize_rank(load_trace(tf.path), tf.rank, re.compile(pattern), window, rank_known=tf.rank_known)


def _summaries(window: dict[int, TraceFile], pattern: str, index: int, jobs: int) -> list[RankSummary]:
    files = list(window.values())
    if jobs <= 1 or len(files) <= 1 or sum(tf.path.stat().st_size for tf in files) < PARALLEL_MIN_BYTES:
        return [_summarize_file(tf, pattern, index) for tf in files]
    ctx = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    with ProcessPoolExecutor(max_workers=min(jobs, len(files)), mp_context=ctx) as pool:
        return list(pool.map(_summarize_file, files, [pattern] * len(files), [index] * len(files)))


def _phase_pattern(phases: str) -> re.Pattern[str]:
    try:
        return re.compile(phases)
    except re.error as e:
        raise TraceError(f"--phases {phases!r} is not a valid regex ({e})") from None


def analyze(
    path: Path = typer.Argument(..., help="run directory, folder of per-rank traces, or one .json/.json.gz trace"),
    json_out: bool = typer.Option(False, "--json", help="write the analysis as JSON to stdout instead of tables"),
    phases: str = typer.Option(DEFAULT_PHASE_REGEX, "--phases", help="regex picking the CPU ranges that are phases"),
    jobs: int = typer.Option(0, "--jobs", help="processes loading ranks in parallel (0: one per CPU core)"),
) -> None:
    """Attribute GPU time to training phases, check communication and rank skew, list findings."""
    err = Console(stderr=True)
    pattern = _phase_pattern(phases)
    n_jobs = jobs if jobs > 0 else _cpus()
    found = discover(path)
    runs = [combine(_summaries(window, pattern.pattern, i, n_jobs), pattern) for i, window in enumerate(found.windows)]
    findings = [d for run in runs for d in diagnose(run)]
    warnings = list(found.warnings) + [f"rank {r.rank}: {n}" for run in runs for r in run.ranks for n in r.notes]
    for w in found.warnings:
        err.print(f"warning: {w}", markup=False, highlight=False, soft_wrap=True)
    if json_out:
        sys.stdout.write(json.dumps(to_json(str(path), runs, findings, warnings), indent=2) + "\n")
    else:
        render(Console(width=None if sys.stdout.isatty() else 200), runs, findings)  # piped: do not squeeze


def diff(
    run_a: Path = typer.Argument(..., help="baseline: run directory, folder of per-rank traces, or one trace"),
    run_b: Path = typer.Argument(..., help="the run to explain, same forms"),
    json_out: bool = typer.Option(False, "--json", help="write the diff as JSON to stdout instead of tables"),
    phases: str = typer.Option(DEFAULT_PHASE_REGEX, "--phases", help="regex picking the CPU ranges that are phases"),
    top: int = typer.Option(15, "--top", help="changed kernels to list per rank"),
) -> None:
    """Where the milliseconds went from A to B: per phase and rank, kernels, collectives."""
    from .diff import diff_rank
    from .ranks import load_ranks
    from .report import diff_json, render_diff

    err = Console(stderr=True)
    pattern = _phase_pattern(phases)
    a, b = load_ranks(run_a, pattern), load_ranks(run_b, pattern)
    common = sorted(set(a) & set(b))
    if not common:
        raise TraceError(f"no rank is in both runs (A has {sorted(a)}, B has {sorted(b)})")
    for r in sorted(set(a) ^ set(b)):
        err.print(f"warning: rank {r} is only in {'A' if r in a else 'B'}; compared ranks: {common}",
                  markup=False, highlight=False, soft_wrap=True)
    diffs = [diff_rank(a[r][0], b[r][0], a[r][1], b[r][1]) for r in common]
    for d in diffs:
        d.changed = d.changed.head(top)
    steps = {r: (a[r][0].step_ms, b[r][0].step_ms) for r in common}
    if json_out:
        sys.stdout.write(json.dumps(diff_json(str(run_a), str(run_b), diffs, steps), indent=2) + "\n")
    else:
        render_diff(Console(width=None if sys.stdout.isatty() else 200), diffs, steps)
