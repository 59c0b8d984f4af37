"""``golfprof dashboard PATH... -o report.html``: the only place here that talks to the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from golfprof.profiler.names import DEFAULT_PHASE_REGEX

from .diffs import MAX_DIFFS


def dashboard(
    paths: list[Path] = typer.Argument(..., help="run directories, matrix folders, or folders holding them"),
    out: Path = typer.Option(Path("report.html"), "-o", "--out", help="HTML file to write (self-contained)"),
    max_increase: str = typer.Option("5%", "--max-increase", help="trend regression threshold, percent over the "
                                     "baseline"),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="trend baseline: run directory, summary.json or "
                                            "baseline file (default: the first run of the trend)"),
    baseline_variant: Optional[str] = typer.Option(None, "--baseline-variant", help="variant the comparison is made "
                                                   "against (default: the matrix's baseline)"),
    order: str = typer.Option("time", "--order", help="trend order: time (run start) or given (as PATHs list them)"),
    step: Optional[int] = typer.Option(None, "--step", min=0, help="profiler step the timeline draws (default: the "
                                       "median-length one)"),
    phases: str = typer.Option(DEFAULT_PHASE_REGEX, "--phases", help="regex picking the CPU ranges that are phases"),
    title: Optional[str] = typer.Option(None, "--title", help="page title"),
    diff: bool = typer.Option(True, "--diff/--no-diff", help="Diff section: the baseline run's traces against up to "
                              f"{MAX_DIFFS} other runs' (phases, kernels), when two or more runs have traces"),
) -> None:
    """Write one HTML dashboard: step timeline, communication overlap, variant comparison, diff, trend."""
    from .report import Options, write  # plotly and scipy load only when a dashboard is drawn

    opts = Options(max_increase=max_increase, baseline=baseline, baseline_variant=baseline_variant, order=order,
                   step=step, phases=phases, title=title, diff=diff)
    report = write(paths, out, opts)  # a DashboardError is the CLI's one `error:` line
    drawn = ", ".join(f"{k} ×{len(v)}" for k, v in report.charts.items())
    print(f"dashboard: {out} ({report.runs} run(s); charts: {drawn or 'none'})")
    for kind, why in report.empty.items():
        print(f"  no {kind} chart: {why}")
