"""``golfprof dashboard PATH... -o report.html``: the only place here that talks to the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from golfprof.profiler.names import DEFAULT_PHASE_REGEX
from golfprof.traces.command import Phases

MAX_DIFFS = 3  # runs a dashboard diffs against the baseline: each diff is two charts; more would bury the rest


def dashboard(
    paths: Annotated[list[Path], typer.Argument(help="Run directories, matrix folders, or folders holding them.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="HTML file to write (self-contained).")] = Path(
        "report.html"),
    max_increase: Annotated[str, typer.Option(help="Trend regression threshold, percent over the baseline.")] = "5%",
    baseline: Annotated[Optional[Path], typer.Option(
        help="Trend baseline: run directory, summary.json or baseline file (default: the first run of the trend).")
    ] = None,
    baseline_variant: Annotated[Optional[str], typer.Option(
        help="Variant the comparison is made against (default: the matrix's baseline).")] = None,
    order: Annotated[str, typer.Option(help="Trend order: time (run start) or given (as PATHs list them).")] = "time",
    step: Annotated[Optional[int], typer.Option(
        min=0, help="Profiler step the timeline draws (default: the median-length one).")] = None,
    phases: Phases = DEFAULT_PHASE_REGEX,
    title: Annotated[Optional[str], typer.Option(help="Page title.")] = None,
    diff: Annotated[bool, typer.Option("--diff/--no-diff", help=(
        f"Diff section: the baseline run's traces against up to {MAX_DIFFS} other runs' (phases, kernels), when two "
        "or more runs have traces."))] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file at -o.")] = False,
) -> None:
    """Write one HTML dashboard: step timeline, communication overlap, variant comparison, diff, trend."""
    from golfprof.profiler.rundir import check_output

    from .report import Options, write  # plotly and scipy load only when a dashboard is drawn

    check_output(out, "-o", force)  # before the drawing: never over a FIFO, device node or an unasked-for file
    opts = Options(max_increase=max_increase, baseline=baseline, baseline_variant=baseline_variant, order=order,
                   step=step, phases=phases, title=title, diff=diff)
    report = write(paths, out, opts)  # a DashboardError is the CLI's one `error:` line
    drawn = ", ".join(f"{k} ×{len(v)}" for k, v in report.charts.items())
    print(f"dashboard: {out} ({report.runs} run(s); charts: {drawn or 'none'})")
    for kind, why in report.empty.items():
        print(f"  no {kind} chart: {why}")
