"""The generated page in headless Chromium: every chart draws its traces, offline, with no console errors.

Skipped only where Chromium is missing outside CI; in CI (``CI`` set) a missing browser fails.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import plotly.graph_objects as go
import pytest

from golfprof.dashboards import charts as C
from golfprof.dashboards.diffs import APPEARED
from golfprof.dashboards.page import Chart, Section, render
from golfprof.dashboards.report import Options, write
from golfprof.profiler.rundir import write_text as write_atomic
from tests.dashboards import dash_synth as S
from tests.dashboards.cdp_browser import Browser, chromium

GPU_TRACES = Path(__file__).resolve().parents[1] / "data" / "gpu_traces"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    binary = chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (CI installs it: see .ci/run)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with Browser(binary) as b:
        yield b


def assert_drawn(charts: list[dict[str, Any]]) -> None:
    """Each chart holds visible traces and its SVG shows marks: an empty chart fails."""
    for c in charts:
        assert c["svg"], f"{c['id']}: plotly drew no SVG"
        assert c["data"] > 0 and c["visible"] > 0, f"{c['id']}: no traces"
        assert c["traces"] > 0 and c["marks"] > 0, f"{c['id']}: traces drawn without a single bar, point or line"


def _render(browser: Browser, page: Path, shot: Path) -> list[dict[str, Any]]:
    browser.console_errors.clear()
    browser.requests.clear()
    browser.open(page)
    charts = browser.charts()
    browser.screenshot(shot)
    assert shot.stat().st_size > 10_000
    assert browser.console_errors == []
    assert browser.requests == [page.resolve().as_uri()]  # nothing fetched: plotly.js is inline
    return charts


def test_all_charts_draw(browser: Browser, matrix: Path, tmp_path: Path):
    """Two ranks with NCCL kernels, two variants × two repeats, a planted kernel: every chart has data."""
    out = tmp_path / "report.html"
    report = write([matrix], out, Options())
    charts = _render(browser, out, tmp_path / "matrix.png")
    assert [(c["kind"], c["id"]) for c in charts] == [(k, i) for k, ids in report.charts.items() for i in ids]
    assert {c["kind"] for c in charts} == {"timeline", "overlap", "comparison", "diff", "trend"}
    assert len(report.charts["diff"]) == 6  # phases, kernels, families of both ddp_banks runs vs explicit_banks-r0
    assert_drawn(charts)
    assert browser.nodata() == []
    assert browser.eval("document.getElementById('chart-diff-kernels-0').data[0].hovertext[0]").startswith(
        f"<b>{S.PLANTED}</b>")


def test_real_gpu_run_draws_and_says_what_it_lacks(browser: Browser, gpu_run: Path, tmp_path: Path):
    """One H100 run: timeline and comparison drawn; no comm kernels and a single run are said, not drawn."""
    out = tmp_path / "report.html"
    write([gpu_run], out, Options())
    charts = _render(browser, out, tmp_path / "h100.png")
    assert [c["kind"] for c in charts] == ["timeline", "comparison"]
    assert_drawn(charts)
    assert sorted(browser.nodata()) == ["overlap", "trend"]


def test_real_gpu_runs_diff_draws(browser: Browser, tmp_path: Path):
    """Eager vs compiled on one H100: the diff's phase and kernel charts draw, the kernel chart capped."""
    runs = [GPU_TRACES / "h100_full_eager_1mb", GPU_TRACES / "h100_full_compiled_1mb"]
    if not all((r / "summary.json").exists() for r in runs):
        pytest.skip(f"recorded GPU runs not found in {GPU_TRACES}")
    out = tmp_path / "report.html"
    report = write(runs, out, Options())
    charts = _render(browser, out, tmp_path / "eager_vs_compiled.png")
    diff = [c for c in charts if c["kind"] == "diff"]
    assert [c["id"] for c in diff] == ["chart-diff-phases-0", "chart-diff-kernels-0", "chart-diff-families-0"]
    assert_drawn(diff)
    assert diff[1]["marks"] == C.MAX_BARS  # many kernel groups moved: the chart shows the largest
    assert f"largest {C.MAX_BARS} of" in report.html


def test_an_empty_chart_fails_the_check(browser: Browser, tmp_path: Path):
    """The check above is not vacuous: a figure with no traces, or only blank bars, is caught."""
    blank = go.Figure(go.Bar(x=["a", "b"], y=[0, 0]))
    unmoved = pd.DataFrame({"rank": 0, "kind": APPEARED, "kernel": ["k"], "count_per_step_a": 0.0,
                            "count_per_step_b": 0.0, "count_delta": 0.0, "ms_per_step_a": 0.0, "ms_per_step_b": 0.0,
                            "ms_delta": 0.0})
    sections = [Section("comparison", "t", "i", charts=[Chart("chart-empty", go.Figure(), pd.DataFrame())]),
                Section("trend", "t", "i", charts=[Chart("chart-blank", blank, pd.DataFrame())]),
                Section("diff", "t", "i", charts=[Chart("chart-diff-zero", C.diff_kernel_figure(unmoved, [0], "t"),
                                                        pd.DataFrame())])]
    out = tmp_path / "empty.html"
    write_atomic(out, render("empty", [], sections))
    charts = _render(browser, out, tmp_path / "empty.png")
    assert [c["id"] for c in charts] == ["chart-empty", "chart-blank", "chart-diff-zero"]
    for c in charts:
        with pytest.raises(AssertionError):
            assert_drawn([c])
