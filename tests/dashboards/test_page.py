"""The page is self-contained and honest about missing data; the command's exit codes and messages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import pytest
from plotly.offline import get_plotlyjs
from typer.testing import Result

from golfprof.dashboards.report import Options, build
from golfprof.profiler.rundir import write_text as write_atomic


def test_page_embeds_plotly_once_and_fetches_nothing(matrix: Path):
    report = build([matrix], Options())
    page = report.html
    assert page.count(get_plotlyjs()) == 1
    ours = page.replace(get_plotlyjs(), "")
    assert "<script src" not in ours and "cdn" not in ours
    assert not re.search(r"""(src|href)=["']https?://""", ours)
    assert report.charts == {"timeline": ["chart-timeline-0", "chart-timeline-1"],
                             "overlap": ["chart-overlap-0", "chart-overlap-1"],
                             "comparison": ["chart-comparison"],
                             "diff": ["chart-diff-phases-0", "chart-diff-kernels-0", "chart-diff-families-0",
                                      "chart-diff-phases-2", "chart-diff-kernels-2", "chart-diff-families-2"],
                             "trend": ["chart-trend"]}
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # plotly finds its div by id: a clash draws into the wrong element
    assert page.count('<table class="dataframe numbers">') == 12  # a table under every chart
    # diff: explicit_banks-r0 is A; ddp_banks-r0 (another configuration) and ddp_banks-r1 are drawn, the
    # repeat explicit_banks-r1 has identical traces
    assert "explicit_banks-r1 vs explicit_banks-r0: no difference" in page
    assert report.empty == {}


def test_missing_data_is_said_not_drawn(series: list[Path]):
    report = build(series, Options())
    assert set(report.charts) == {"comparison", "trend"}
    assert "has a trace" in report.empty["timeline"] and set(report.empty) == {"timeline", "overlap"}
    for kind in ("timeline", "overlap"):
        assert f'class="nodata" data-chart="{kind}"' in report.html
    one = build(series[:1], Options())
    assert "two or more comparable runs" in one.empty["trend"]


def test_command_writes_the_file(cli: Callable[..., Result], series: list[Path], tmp_path: Path):
    out = tmp_path / "out" / "report.html"
    result = cli(*series, "-o", out, "--max-increase", "10%", "--order", "given")
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temp file left behind
    assert "comparison ×1, trend ×1" in result.stdout
    assert "+10% = " in out.read_text()


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "no such file or directory"),
    (["{series}", "--max-increase", "lots"], "--max-increase 'lots'"),
    (["{series}", "--order", "random"], "--order 'random'"),
    (["{series}", "--baseline-variant", "nope"], "--baseline-variant 'nope' is not among the runs"),
    (["{series}", "--baseline", "{missing}"], "--baseline:"),
    (["{matrix}", "--step", "99"], "--step 99: not a profiled step"),
    (["{matrix}", "--phases", "("], "--phases '(' is not a valid regex"),
])
def test_bad_input_exits_2_with_one_line(cli: Callable[..., Result], series: list[Path], matrix: Path,
                                         tmp_path: Path, args: list[str], message: str):
    paths = {"missing": tmp_path / "missing", "series": series[0], "matrix": matrix}
    result = cli(*(a.format(**paths) for a in args), "-o", tmp_path / "r.html")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_failed_write_keeps_the_old_report(tmp_path: Path):
    out = tmp_path / "report.html"
    out.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(out, "new \ud800")  # a lone surrogate cannot be encoded: the write fails midway
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
