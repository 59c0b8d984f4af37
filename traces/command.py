"""``golfprof analyze PATH``: the only place here that touches files and the terminal."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

from golfprof.errors import TraceError
from golfprof.profiler.names import DEFAULT_PHASE_REGEX

if TYPE_CHECKING:  # pandas and the trace modules load when a command runs, not with the CLI (`golfprof --help`)
    from .discover import TraceFile
    from .summary import RankSummary, RunSummary

# --phases, declared once for analyze, diff and dashboard
Phases = Annotated[str, typer.Option(help="Regex picking the CPU ranges that are phases.")]
PARALLEL_MIN_BYTES = 4 << 20  # below this on disk, starting worker processes costs more than it saves


def _cpus() -> int:
    """CPUs this process may run on (a container's limit, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _summarize_file(tf: TraceFile, pattern: str, window: int) -> RankSummary:
    """Load one trace and reduce it to its summary, so at most one trace per process is in memory."""
    from .load import load_trace
    from .summary import summarize_rank

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


def _write_merged(out: Path, window: dict[int, TraceFile], run: RunSummary) -> int:
    """Every rank of ``window`` into one Perfetto trace at ``out`` (gzip if it ends .gz); returns the events written."""
    from . import merge
    from .load import load_trace

    by_rank = {r.rank: r for r in run.ranks}
    offsets = dict(zip(run.clocks["rank"], run.clocks["offset_us"])) if not run.clocks.empty else {}
    shift = merge.shifts({r: by_rank[r].start_us for r in window}, {r: by_rank[r].base_us for r in window}, offsets)
    tmp = out.with_name(f".{out.name}.tmp")
    n = 0
    try:
        opener = gzip.open if out.name.endswith(".gz") else open
        with opener(tmp, "wt", encoding="utf-8") as fh:
            fh.write('{"displayTimeUnit":"ms","golfprof":')
            fh.write(json.dumps({"merged_ranks": sorted(window), "shift_us": {str(r): v for r, v in shift.items()},
                                 "clock_offsets_us": {str(r): v for r, v in offsets.items() if v == v}}))
            fh.write(',"traceEvents":[\n')
            for rank, tf in sorted(window.items()):
                for e in merge.chrome_events(load_trace(tf.path), rank, shift[rank]):
                    fh.write(("," if n else "") + e + "\n")
                    n += 1
            fh.write("]}\n")
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise TraceError(f"{out}: cannot write the merged trace ({e.strerror or e})") from None
    return n


def _check_windows(path: Path, runs: list[RunSummary]) -> None:
    """For a golfprof run directory: each rank's profiled steps against its step timers (``typical``)."""
    from golfprof.profiler.rundir import RunDir

    from .typical import window_note, window_vs_timers

    rd = RunDir(path)
    if not rd.summary.is_file():
        return
    try:
        warmup = rd.read_record().warmup_steps or 1
    except (OSError, ValueError):
        warmup = 1
    for run in runs:
        for r in run.ranks:
            if not rd.steps(r.rank).is_file():
                continue
            try:
                timers = rd.steps_frame(r.rank)
            except (OSError, ValueError) as e:
                r.notes = [*r.notes, f"step timers unreadable ({e}): the window is not checked against them"]
                continue
            r.window_check = window_vs_timers(timers, r.step_numbers, warmup)
            note = window_note(r.window_check) if r.window_check else None
            if note:
                r.notes = [*r.notes, note]


def _attach_recorded(path: Path, runs: list[RunSummary]) -> None:
    """For a run directory that recorded its collectives as issued (a profiled script, a simulated world): each
    rank's per profiled step, so gloo runs list them as NCCL runs do (``recorded``)."""
    from .recorded import per_step, read

    frames = read(path) if path.is_dir() else {}
    for run in runs:
        for r in run.ranks:
            if r.rank in frames:
                r.recorded = per_step(frames[r.rank], r.step_numbers)


def analyze(
    path: Annotated[Path, typer.Argument(
        help="Run directory, folder of per-rank traces, or one .json/.json.gz trace.")],
    json_out: Annotated[bool, typer.Option(
        "--json", help="Write the analysis as JSON to stdout instead of tables.")] = False,
    phases: Phases = DEFAULT_PHASE_REGEX,
    jobs: Annotated[int, typer.Option(min=0, help="Processes loading ranks in parallel (0: one per CPU core).")] = 0,
    merged_trace: Annotated[Optional[Path], typer.Option(
        help="Also write every rank of the first profiling window into one Perfetto trace (.json or .json.gz): one "
             "process per rank, clocks aligned, phases kept.")] = None,
) -> None:
    """Attribute GPU time to training phases, check communication and rank skew, list findings."""
    from .diagnose import diagnose
    from .discover import discover
    from .report import rank_label, render, to_json
    from .summary import combine

    err = Console(stderr=True)
    pattern = _phase_pattern(phases)
    n_jobs = jobs if jobs > 0 else _cpus()
    if merged_trace is not None:  # a re-run replaces it (derived from the traces), never a FIFO or device node
        from golfprof.profiler.rundir import check_output

        check_output(merged_trace, "--merged-trace", force=True)
    found = discover(path)
    runs = [combine(_summaries(window, pattern.pattern, i, n_jobs), pattern) for i, window in enumerate(found.windows)]
    _check_windows(Path(path), runs)
    _attach_recorded(Path(path), runs)
    findings = [d for run in runs for d in diagnose(run)]
    run_warnings = [w for run in runs for w in run.warnings]
    warnings = list(found.warnings) + run_warnings
    warnings += [f"rank {rank_label(r)}: {n}" for run in runs for r in run.ranks for n in r.notes]
    for w in list(found.warnings) + run_warnings:
        err.print(f"warning: {w}", markup=False, highlight=False, soft_wrap=True)
    if merged_trace is not None:
        n = _write_merged(merged_trace, found.windows[0], runs[0])
        more = f" (the first of {len(runs)} profiling windows)" if len(runs) > 1 else ""
        err.print(f"merged trace: {merged_trace}: {len(found.windows[0])} rank(s){more}, {n} events; open it in "
                  "ui.perfetto.dev", markup=False, highlight=False, soft_wrap=True)
    if json_out:
        sys.stdout.write(json.dumps(to_json(str(path), runs, findings, warnings), indent=2) + "\n")
    else:
        render(Console(width=None if sys.stdout.isatty() else 200), runs, findings)  # piped: do not squeeze


def _rank_pair(ranks: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*", ranks)
    if m is None:
        raise TraceError(f"--ranks {ranks!r}: expected two ranks, A's and B's, as in --ranks 0,1")
    return int(m.group(1)), int(m.group(2))


def diff(
    run_a: Annotated[Path, typer.Argument(help="Baseline: run directory, folder of per-rank traces, or one trace.")],
    run_b: Annotated[Optional[Path], typer.Argument(
        help="The run to explain, same forms (default with --ranks: RUN_A).")] = None,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Write the diff as JSON to stdout instead of tables.")] = False,
    phases: Phases = DEFAULT_PHASE_REGEX,
    top: Annotated[int, typer.Option(min=0, help="Changed kernels to list per rank.")] = 15,
    ranks: Annotated[Optional[str], typer.Option(
        help="Compare rank A of RUN_A with rank B of RUN_B (or of RUN_A when RUN_B is not given), as A,B: "
             "--ranks 0,1.")] = None,
    kernel_names: Annotated[str, typer.Option(
        help="grouped: fold template arguments, Triton suffixes and tile sizes; full: exact names, so tile-size "
             "variants stay apart.")] = "grouped",
) -> None:
    """Where the milliseconds went from A to B: per phase and rank, kernels, collectives."""
    from .diff import diff_rank
    from .ranks import load_ranks
    from .report import diff_json, render_diff
    from .settings import difference_lines

    err = Console(stderr=True)
    pattern = _phase_pattern(phases)
    if kernel_names not in ("grouped", "full"):
        raise TraceError(f"--kernel-names {kernel_names!r}: valid: grouped, full")
    grouped = kernel_names == "grouped"
    if run_b is None and ranks is None:
        raise TraceError("give RUN_B, or --ranks A,B to compare two ranks of RUN_A")
    if run_b is not None:
        for kind, text in difference_lines(run_a, run_b):
            err.print(f"{kind}: {text}", markup=False, highlight=False, soft_wrap=True)
    run_a = _prediction_of(run_a, "A", err)
    run_b = None if run_b is None else _prediction_of(run_b, "B", err)
    a = load_ranks(run_a, pattern, grouped)
    b = a if run_b is None else load_ranks(run_b, pattern, grouped)
    pairs = None
    if ranks is not None:
        ra, rb = _rank_pair(ranks)
        for r, side, have in ((ra, "A", a), (rb, "B", b)):
            if r not in have:
                raise TraceError(f"--ranks {ranks}: {side} has no rank {r} (it has {sorted(have)})")
        pairs = {ra: rb}
        common = [ra]
        diffs = [diff_rank(a[ra][0], b[rb][0], a[ra][1], b[rb][1])]
        steps = {ra: (a[ra][0].step_ms, b[rb][0].step_ms)}
    else:
        common = sorted(set(a) & set(b))
        if not common:
            raise TraceError(f"no rank is in both runs (A has {sorted(a)}, B has {sorted(b)})")
        for r in sorted(set(a) ^ set(b)):
            err.print(f"warning: rank {r} is only in {'A' if r in a else 'B'}; compared ranks: {common}",
                      markup=False, highlight=False, soft_wrap=True)
        diffs = [diff_rank(a[r][0], b[r][0], a[r][1], b[r][1]) for r in common]
        steps = {r: (a[r][0].step_ms, b[r][0].step_ms) for r in common}
    for d in diffs:
        d.changed = d.changed.head(top)
    b_name = str(run_b if run_b is not None else run_a)
    if json_out:
        sys.stdout.write(json.dumps(diff_json(str(run_a), b_name, diffs, steps, pairs), indent=2) + "\n")
    else:
        render_diff(Console(width=None if sys.stdout.isatty() else 200), diffs, steps, pairs)


def _prediction_of(path: Path, which: str, err: Console) -> Path:
    """A simulated run is compared through its predicted timeline (its own trace has no communication)."""
    from golfprof.profiler.rundir import RunDir

    folder = RunDir(path).predicted_trace_set()
    if folder is None:
        return path
    err.print(f"note: {which} is a simulated run: comparing its predicted traces ({folder}); "
              "B - A of a simulated B against a real A is predicted minus measured", markup=False, highlight=False,
              soft_wrap=True)
    return folder
