"""The Diff section's data: a planted kernel is found and drawn, a run against itself says "no difference"."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import Result

from golfprof.dashboards import charts, diffs, tables
from golfprof.dashboards.report import Options, build
from golfprof.profiler.names import DEFAULT_PHASE_REGEX
from golfprof.traces.ranks import load_ranks
from tests.dashboards import dash_synth as S

PATTERN = re.compile(DEFAULT_PHASE_REGEX)
UPDATE = "golfprof/step/optimizer/update_apply"


def _inputs(folder: Path, world: int = 1, planted_us: float = 0.0) -> diffs.RankInputs:
    for r in range(world):
        doc = S.trace_doc(r, world, "explicit_banks", planted_us=planted_us)
        S.write_trace(folder / f"rank{r}.pt.trace.json.gz", doc)
    return load_ranks(folder, PATTERN)


def test_planted_kernel_appears_in_the_chart_data(tmp_path: Path):
    a, b = _inputs(tmp_path / "a"), _inputs(tmp_path / "b", planted_us=250)
    d = diffs.diff_runs("a", a, "b", b)
    assert not d.same and d.ranks == [0]
    k = d.kernels
    assert k[["kind", "kernel"]].values.tolist() == [[diffs.APPEARED, S.PLANTED]]
    assert k["ms_delta"].iloc[0] == pytest.approx(0.25) and k["count_delta"].iloc[0] == 1
    p = d.phases.set_index("phase")
    assert p.loc[UPDATE, "gpu_busy_ms_delta"] == pytest.approx(0.25)
    assert (p["cpu_ms_delta"] == 0).all()  # the same CPU ranges: only GPU time moved
    assert d.phases["gpu_busy_ms_delta"].abs().is_monotonic_decreasing

    fig = charts.diff_kernel_figure(d.kernels, d.ranks, "t")
    (bar,) = fig.data
    assert bar.name == diffs.APPEARED and list(bar.x) == pytest.approx([0.25])
    assert fig.layout.yaxis.ticktext == (S.PLANTED,) and "0.250 ms/step" in bar.hovertext[0]
    phase_fig = charts.diff_phase_figure(d.phases, d.ranks, "t")
    assert [t.name for t in phase_fig.data] == ["Δ GPU busy (ms/step)", "Δ CPU (ms/step)"]
    assert "optimizer/update_apply" in phase_fig.layout.yaxis.ticktext
    assert "ms" in phase_fig.layout.xaxis.title.text and "ms" in fig.layout.xaxis.title.text
    assert tables.diff_kernel_table(d.kernels)["Δ ms/step"].tolist() == pytest.approx([0.25])

    back = diffs.diff_runs("b", b, "a", a)  # and the other way round it vanished
    assert back.kernels[["kind", "kernel"]].values.tolist() == [[diffs.VANISHED, S.PLANTED]]


def test_a_run_against_itself_is_no_difference(tmp_path: Path):
    a = _inputs(tmp_path / "a", world=2)
    d = diffs.diff_runs("a", a, "a", a)
    assert d.same and d.ranks == [0, 1] and d.phases.empty and d.kernels.empty

    run = S.write_run(tmp_path / "runs" / "20260101-000000-explicit_banks", "explicit_banks", 100, 10, seed=1, world=1)
    copy = shutil.copytree(run, run.with_name("20260101-000100-explicit_banks"))
    report = build([run, copy], Options())
    assert "diff" not in report.charts
    assert report.empty["diff"].startswith("no difference")
    assert f"{copy.name} vs {run.name}: no difference" in report.html
    assert 'class="nodata" data-chart="diff"' in report.html


def test_ranks_beyond_a_few_show_the_lowest(tmp_path: Path):
    (s0, k0), = _inputs(tmp_path / "a").values()
    many = {r: (s0, k0) for r in range(diffs.FEW_RANKS + 1)}
    d = diffs.diff_runs("a", many, "b", {**many, 9: (s0, k0)})
    assert d.ranks == [0]
    assert any("rank 0 is shown" in n for n in d.notes) and "rank 9 is only in B: not compared" in d.notes


def test_plan_diffs_other_configurations_before_repeats_and_caps():
    x0, y0, x1, y1, x2 = (object() for _ in range(5))  # plan goes by identity: stand-ins for runs
    base, others, left = diffs.plan({"x": x0, "y": y0}, [x0, y0, x1, y1, x2], "y")  # type: ignore[arg-type, dict-item]
    assert base is y0 and others == [x0, x1, y1] and left == 1


def test_no_diff_option_leaves_the_section_out(cli: Callable[..., Result], matrix: Path, tmp_path: Path):
    out = tmp_path / "r.html"
    result = cli(matrix, "-o", out, "--no-diff")  # with the diff: see test_page
    assert result.exit_code == 0 and "diff ×" not in result.stdout and "timeline ×2" in result.stdout
    assert 'id="section-diff"' not in out.read_text()
