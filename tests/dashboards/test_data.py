"""Finding runs, naming configurations, and the comparison and trend numbers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from golfprof.ablations.matrix import load_state
from golfprof.dashboards import data
from golfprof.dashboards.runs import DashboardError, find_runs
from golfprof.results.comparison import comparison as matrix_comparison
from tests.dashboards import dash_synth as S


def test_matrix_folder_expands_to_its_runs_and_baseline(matrix: Path):
    found = find_runs([matrix])
    assert [r.name for r in found.runs] == ["explicit_banks-r0", "ddp_banks-r0", "explicit_banks-r1", "ddp_banks-r1"]
    assert {r.matrix_baseline for r in found.runs} == {"explicit_banks"}
    assert len(find_runs([matrix, matrix / "ddp_banks-r0", matrix.parent]).runs) == 4  # each run once


def test_parent_folder_skips_failed_and_interrupted_runs(tmp_path: Path, matrix: Path):
    m = tmp_path / "runs" / "m"
    shutil.copytree(matrix, m)
    state = json.loads((m / "matrix.json").read_text())
    state["runs"]["ddp_banks-r1"] = {"variant": "ddp_banks", "repeat": 1, "status": "failed", "error": "exit code 1"}
    (m / "matrix.json").write_text(json.dumps(state))
    lone = S.write_run(tmp_path / "runs" / "20260102-000000-explicit_banks", "explicit_banks", 100, 10, seed=1, world=2)
    shutil.copytree(lone, lone.with_name(lone.name + ".incomplete-1"))
    (lone.with_name(lone.name + ".incomplete-1") / "summary.json").unlink()
    found = find_runs([tmp_path / "runs"])
    assert sorted(r.name for r in found.runs) == sorted(["20260102-000000-explicit_banks", "explicit_banks-r0",
                                                         "ddp_banks-r0", "explicit_banks-r1"])
    assert any("ddp_banks-r1: skipped (exit code 1)" in n for n in found.notes)
    assert any(".incomplete-1: skipped" in n for n in found.notes)


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "file", "none"])
def test_bad_input_is_one_line(tmp_path: Path, case: str):
    if case == "missing":
        paths = [tmp_path / "nope"]
    elif case == "empty":
        paths = [tmp_path]
    elif case == "corrupt":
        run = S.write_run(tmp_path / "r", "explicit_banks", 100, 10, seed=0, world=1, trace=False)
        (run / "summary.json").write_text("{not json")
        paths = [run]
    elif case == "file":
        (tmp_path / "x.txt").write_text("x")
        paths = [tmp_path / "x.txt"]
    else:
        paths = []
    with pytest.raises(DashboardError) as e:
        find_runs(paths)
    assert "\n" not in str(e.value) and str(e.value)


def test_labels_tell_same_named_configurations_apart():
    base = {"variant": "explicit_unbanked", "preset": "full", "world_size": 1, "tokens_per_step": 8, "device": "H100",
            "toggles": {"layout": "unbanked", "ortho": "ns5", "bf16": ["weights"]}}
    pe = base | {"toggles": base["toggles"] | {"ortho": "polar_express"}}
    other = {"variant": "polar_express", "toggles": {"ortho": "polar_express"}}
    assert data.group_labels([base, pe, base, other]) == [
        "explicit_unbanked · ortho=ns5", "explicit_unbanked · ortho=polar_express", "explicit_unbanked · ortho=ns5",
        "polar_express"]


def test_comparison_matches_comparison_json(matrix: Path):
    """Same statistics as `golfprof ablate` writes to comparison.json, baseline first."""
    runs = find_runs([matrix]).runs
    labels = data.group_labels([r.summary for r in runs])
    cmp = data.comparison(runs, labels, "explicit_banks")
    ref = {(r["variant"], r["metric"]): r for r in matrix_comparison(matrix, load_state(matrix))["rows"]}
    f = cmp.frame.set_index("variant")
    assert list(f.index) == ["explicit_banks", "ddp_banks"] and f["baseline"].tolist() == [True, False]
    for variant in f.index:
        for metric, key in (("ms_per_step", "ms"), ("optimizer_ms", "opt")):
            r = ref[(variant, metric)]
            assert f.loc[variant, metric] == pytest.approx(r["value"])
            assert (f.loc[variant, f"{key}_lo"], f.loc[variant, f"{key}_hi"]) == pytest.approx((r["ci_lo"], r["ci_hi"]))
            if variant != "explicit_banks":
                assert f.loc[variant, f"{key}_diff_pct"] == pytest.approx(r["diff_pct"])
    assert f.loc["ddp_banks", "opt_verdict"] == "significantly faster"
    assert cmp.stack == ["golfprof/step/data", "golfprof/step/forward", "golfprof/step/backward",
                         "golfprof/step/optimizer", "golfprof/step/ema", data.OUTSIDE]
    parts = f[cmp.stack].sum(axis=1)
    assert (parts >= f["ms_per_step"] - 1e-9).all()  # the stack reaches the total


def test_a_matrix_comparison_json_is_read_when_it_holds_the_rows(tmp_path: Path, matrix: Path):
    """The dashboard draws the rows `golfprof ablate` wrote; rows of other runs are computed instead."""
    from golfprof.profiler.rundir import MatrixDir
    from golfprof.results.comparison import comparison_frame

    m = tmp_path / "m"
    shutil.copytree(matrix, m)
    stored = matrix_comparison(m, load_state(m))
    for row in stored["rows"]:
        if (row["variant"], row["metric"]) == ("ddp_banks", "optimizer_ms"):
            row["value"] += 1000.0  # a mark: only a read of the file shows it
    MatrixDir(m).write_comparison(stored, comparison_frame(stored))
    found = find_runs([m])
    assert set(found.comparisons) == {m}
    labels = data.group_labels([r.summary for r in found.runs])
    cmp = data.comparison(found.runs, labels, "explicit_banks", found.comparisons[m])
    computed = data.comparison(found.runs, labels, "explicit_banks")
    assert cmp.source == "comparison.json" and computed.source == "computed"
    f, g = cmp.frame.set_index("variant"), computed.frame.set_index("variant")
    assert f.loc["ddp_banks", "optimizer_ms"] == pytest.approx(g.loc["ddp_banks", "optimizer_ms"] + 1000.0)
    assert f.drop(columns="optimizer_ms").equals(g.drop(columns="optimizer_ms"))
    fewer = data.comparison(found.runs[:3], labels[:3], "explicit_banks", found.comparisons[m])
    assert fewer.source == "computed"  # one run of ddp_banks, not the two the file compared


def test_trend_order_threshold_and_regression(series: list[Path]):
    runs = find_runs(list(reversed(series))).runs
    ordered = data.ordered(runs, "time")
    assert [r.path for r in ordered] == series
    assert [r.path for r in data.ordered(runs, "given")] == list(reversed(series))
    frame, notes = data.trend(ordered, ["explicit_banks"] * len(ordered), ordered[0].samples, 5.0)
    assert notes == []
    ms = frame[frame["metric"] == "ms_per_step"]
    assert ms["regressed"].tolist() == [False, False, False, True, False]
    assert ms["threshold"].iloc[0] == pytest.approx(ms["baseline"].iloc[0] * 1.05)
    assert ms["git"].iloc[3] == "0000003abc"
    assert frame[frame["metric"] == "optimizer_ms"]["regressed"].tolist() == [False, False, False, True, False]


def test_time_order_follows_the_recorded_start_not_file_times(tmp_path: Path, matrix: Path):
    """A copied or checked-out matrix has fresh mtimes in any order: env.json's start decides."""
    m = tmp_path / "m"
    shutil.copytree(matrix, m)
    names = ["ddp_banks-r1", "explicit_banks-r0", "explicit_banks-r1", "ddp_banks-r0"]  # the recorded order
    for k, name in enumerate(names):
        env_path = m / name / "env.json"
        env = json.loads(env_path.read_text())
        env_path.write_text(json.dumps({**env, "started": f"2026-11-23T16:1{k}:00+00:00"}))
        os.utime(m / name / "config.json", (2e9 - k, 2e9 - k))  # file times say the reverse
    assert [r.name for r in data.ordered(find_runs([m]).runs, "time")] == names


def test_trend_leaves_out_runs_it_cannot_compare(series: list[Path], matrix: Path):
    runs = find_runs([*series[:2], matrix / "explicit_banks-r0"]).runs  # world size 1, 1, 2
    frame, notes = data.trend(runs, ["x"] * 3, runs[0].samples, 5.0)
    assert set(frame["run"]) == {series[0].name, series[1].name}
    assert len(notes) == 1 and "explicit_banks-r0" in notes[0] and "world_size" in notes[0]
