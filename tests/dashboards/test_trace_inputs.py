"""`golfprof dashboard` takes what `golfprof analyze` takes: a folder of Kineto traces from any trainer
or one trace file, with --phases, and draws the step timeline and the overlap chart for them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from golfprof.dashboards.report import Options, build
from tests.traces.test_before_window import queued_run
from tests.traces.trace_dirs import PUBLIC


def test_a_folder_of_foreign_traces(tmp_path: Path, cli) -> None:
    traces = queued_run(tmp_path / "someone") / "trace"
    out = tmp_path / "report.html"
    result = cli(traces, "-o", out, "--phases", "^phase:", "--no-diff")
    assert result.exit_code == 0, result.output
    assert "charts: timeline ×1, overlap ×1" in result.stdout
    assert "no comparison chart: the inputs are Kineto traces, not golfprof run directories" in result.stdout
    html = out.read_text()
    assert "phase:train" in html and "rank 1" in html.replace("r1 ·", "rank 1")


def test_overlap_of_a_foreign_run_leaves_out_work_from_before_the_window(tmp_path: Path) -> None:
    report = build([queued_run(tmp_path / "someone") / "trace"], Options(phases="^phase:", diff=False))
    assert report.runs == 0 and report.charts == {"timeline": ["chart-timeline-0"], "overlap": ["chart-overlap-0"]}
    # the overlap table of rank 0: 4 reduce-scatters, 3.2 ms per step, as `golfprof analyze` counts them
    rows = re.findall(r"all phases</td>.*?</tr>", report.html, re.DOTALL)
    assert rows and "3.200" in rows[0] and "4.000" in rows[0]


def test_one_public_trace_file(tmp_path: Path, cli) -> None:
    folder = PUBLIC / "nccl_parser_config"
    if not folder.is_dir():
        pytest.skip(f"public traces not found at {PUBLIC}")
    result = cli(next(folder.glob("*.json.gz")), "-o", tmp_path / "r.html", "--no-diff")
    assert result.exit_code == 0, result.output
    assert "timeline ×1" in result.stdout and "overlap ×1" in result.stdout


def test_neither_runs_nor_traces_is_one_clear_line(tmp_path: Path, cli) -> None:
    (tmp_path / "notes.txt").write_text("nothing")
    result = cli(tmp_path, "-o", tmp_path / "r.html")
    assert result.exit_code == 2
    assert "no run directories (folders with a summary.json) and no Kineto traces found" in result.output


def test_ranks_on_clocks_seconds_apart_are_drawn_as_they_ran(tmp_path: Path) -> None:
    """Rank 1's clock reads 2.5 s ahead: the timeline puts both ranks' reduce-scatters ending together."""
    from golfprof.dashboards import timeline
    from golfprof.traces.load import load_trace
    from tests.traces.test_clocks_ranks import _two_ranks

    run = _two_ranks(tmp_path / "run", base_shift_ns=2_500_000_000)
    pattern = re.compile("^golfprof/")
    ranks = [timeline.load_rank(load_trace(run / "trace" / f"rank{r}.pt.trace.json.gz"), r, pattern) for r in (0, 1)]
    shift = timeline.clock_shifts(ranks)
    assert shift[1] - shift[0] == pytest.approx(0.0, abs=1e-3)  # base 2.5 s apart, offset 2.5 s measured
    origin = timeline.step_start(ranks[0], 4) + shift[0]
    ends = [timeline.step_timeline(rt, 4, origin - shift[rt.rank]).segments.query("kind == 'comm'")["end_ms"].max()
            for rt in ranks]
    assert ends[0] == pytest.approx(ends[1]) == pytest.approx(10.0)
    report = build([run], Options(diff=False))
    assert "chart-timeline-0" in report.charts["timeline"]
