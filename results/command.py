"""``golfprof regress`` and ``golfprof baseline save``: the regression gate and the files it compares with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from golfprof.tables import console


def regress(
    current: Annotated[Path, typer.Argument(help="Run directory or summary.json to check.")],
    baseline: Annotated[Path, typer.Option(help="Run directory, summary.json or baseline file.")],
    metric: Annotated[list[str], typer.Option(
        help="Metric(s) to gate; repeat for several (e.g. optimizer_ms, ms_per_step, phase:<name>).")] = [  # noqa: B006
        "optimizer_ms"],
    max_increase: Annotated[str, typer.Option(help="Allowed worsening, percent of the baseline (e.g. 5%).")] = "5%",
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable result on stdout.")] = False,
) -> None:
    """Exit 0 within bounds, 1 on a significant regression beyond the bound, 2 on bad input."""
    from .regress import parse_bound
    from .regress import regress as run_regress

    result = run_regress(current, baseline, metric, parse_bound(max_increase))
    if json_out:
        print(json.dumps(result, indent=2))
    else:
        for m in result["metrics"]:
            status = "REGRESSION" if m["regressed"] else "ok"
            console.print(f"{status}: {m['why']} [{m['test']}]", highlight=False)
        for note in result["throttled"]:
            console.print(f"warning: {note}", highlight=False)
    raise typer.Exit(1 if result["regressed"] else 0)


baseline_app = typer.Typer(no_args_is_help=True, help="Baseline files for `golfprof regress`.")


@baseline_app.command("save")
def baseline_save(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (same config and device).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Baseline file to write (commit it).")] = Path(
        "baseline.json"),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing baseline file at -o.")] = False,
) -> None:
    """Write a baseline (summary + per-step samples) meant to be committed."""
    from golfprof.profiler.rundir import check_output

    from .regress import save_baseline

    check_output(out, "-o", force)
    data = save_baseline(runs, out)
    console.print(f"baseline: {out} ({len(data['sources'])} run(s), {len(data['samples'])} metrics with samples)",
                  highlight=False)
