"""``golfprof analyze`` end to end: output shape, PATH forms, and bad input as one clear line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from golfprof.profiler import phases as ph
from golfprof.traces import command
from tests.traces.kineto_synth import TraceBuilder, golfprof_meta

PHASE_KEYS = {"cpu_ms", "gpu_kernel_ms", "gpu_busy_ms", "comm_ms", "exposed_comm_ms"}
RANK_KEYS = {"rank", "steps", "step_ms", "gpu_busy_pct", "idle_pct", "comm_comp_overlap_pct", "phases"}


def _rank_trace(rank: int, world: int, variant: str = "baseline", steps: int = 2) -> TraceBuilder:
    b = TraceBuilder(rank=rank, world_size=world, golfprof=golfprof_meta(rank, world, variant))
    for n in range(steps):
        s = n * 5000.0
        b.step(n, s, 5000)
        b.cpu(ph.STEP, s + 5, 4900)
        b.cpu(ph.FORWARD, s + 10, 2000)
        b.kernel("gemm", s + 20, s + 100, 1500)
        b.cpu(ph.OPTIMIZER, s + 2100, 2000)
        b.nccl("all_reduce", s + 2200, s + 2300, 400 + 100 * rank)
    return b


def _run_dir(root: Path, world: int = 2, ranks: tuple[int, ...] | None = None) -> Path:
    run = root / "run"
    for r in ranks if ranks is not None else range(world):
        _rank_trace(r, world).write(run / "trace" / f"rank{r}.pt.trace.json.gz")
    (run / "config.json").write_text("{}")
    (run / "summary.json").write_text("{}")
    return run


def test_json_shape_for_a_run_directory(tmp_path: Path, analyze_json) -> None:
    doc = analyze_json(_run_dir(tmp_path))
    assert [r["rank"] for r in doc["ranks"]] == [0, 1]
    for r in doc["ranks"]:
        assert RANK_KEYS <= set(r)
        assert r["steps"] == 2 and r["step_ms"] == pytest.approx(5.0)
        assert all(isinstance(r[k], float) for k in ("gpu_busy_pct", "idle_pct", "comm_comp_overlap_pct"))
        assert {ph.STEP, ph.FORWARD, ph.OPTIMIZER} <= set(r["phases"])
        for p in r["phases"].values():
            assert PHASE_KEYS <= set(p)
    assert doc["ranks"][1]["phases"][ph.OPTIMIZER]["comm_ms"] == pytest.approx(0.5)
    assert {"skew", "diagnoses", "warnings"} <= set(doc)


def test_ranks_loaded_in_parallel_give_the_same_answer(tmp_path: Path, analyze_json,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(command, "PARALLEL_MIN_BYTES", 0)
    run = _run_dir(tmp_path)
    assert analyze_json(run, "--jobs", "2") == analyze_json(run, "--jobs", "1")


def test_single_file_and_rank_folder_forms(tmp_path: Path, analyze_json) -> None:
    run = _run_dir(tmp_path)
    one = analyze_json(run / "trace" / "rank1.pt.trace.json.gz")
    assert [r["rank"] for r in one["ranks"]] == [1]
    assert [r["rank"] for r in analyze_json(run / "trace")["ranks"]] == [0, 1]


def test_tables(tmp_path: Path, cli) -> None:
    result = cli(_run_dir(tmp_path))
    assert result.exit_code == 0
    for text in ("ranks", "phases, rank 0", ph.OPTIMIZER, "collectives", "all_reduce"):
        assert text in result.stdout


def test_foreign_trainer_with_its_own_phase_names(tmp_path: Path, analyze_json) -> None:
    b = TraceBuilder(world_size=None, pid=77)
    for n in range(3):
        s = n * 2000.0
        b.step(n, s, 2000)
        b.cpu("phase:fwd", s + 10, 900, tid=77)
        b.kernel("gemm", s + 20, s + 30, 800, tid=77)
        b.cpu("phase:bwd", s + 1000, 900, tid=77)
        b.kernel("gemm_bwd", s + 1010, s + 1020, 850, tid=78)
    path = b.write(tmp_path / "someone_elses.json")
    default = analyze_json(path)["ranks"][0]
    assert default["phases"] == {} and any("no CPU ranges match" in n for n in default["notes"])
    p = analyze_json(path, "--phases", "^phase:")["ranks"][0]["phases"]
    assert set(p) == {"phase:fwd", "phase:bwd"}
    assert p["phase:bwd"]["gpu_kernel_ms"] == pytest.approx(0.85)


def test_cpu_only_trace_reports_cpu_phases(tmp_path: Path, cli) -> None:
    b = TraceBuilder()
    b.step(1, 0, 3000)
    b.cpu(ph.STEP, 10, 2900)
    b.cpu(ph.FORWARD, 20, 1000)
    b.cpu("aten::mm", 30, 500, cat="cpu_op")
    result = cli(b.write(tmp_path / "cpu.json"), "--json")
    assert result.exit_code == 0
    r = json.loads(result.stdout)["ranks"][0]
    assert r["gpu"] is False
    assert r["gpu_busy_pct"] is None and r["idle_pct"] is None and r["comm_comp_overlap_pct"] is None
    assert r["phases"][ph.FORWARD]["cpu_ms"] == pytest.approx(1.0)
    assert r["phases"][ph.FORWARD]["gpu_kernel_ms"] is None
    assert any("GPU figures are absent" in n for n in r["notes"])
    tables = cli(tmp_path / "cpu.json")
    assert "GPU figures are absent" in tables.stdout


def test_trace_without_profiler_steps_is_one_window(tmp_path: Path, analyze_json) -> None:
    b = TraceBuilder()
    b.cpu(ph.FORWARD, 0, 1000)
    b.kernel("gemm", 10, 20, 500)
    r = analyze_json(b.write(tmp_path / "t.json"))["ranks"][0]
    assert r["steps"] == 0 and r["step_ms"] is None
    assert r["phases"][ph.FORWARD]["gpu_kernel_ms"] == pytest.approx(0.5)
    assert any("no ProfilerStep ranges" in n for n in r["notes"])


def test_missing_ranks_are_bad_input_and_one_file_is_one_rank(tmp_path: Path, cli) -> None:
    """The README's promise: a set with a rank missing is bad input (exit 2); one file asked for is analysed."""
    run = _run_dir(tmp_path, world=4, ranks=(0, 1))
    result = cli(run, "--json")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "ranks missing from the set: 2-3 (world_size 4, found 2)" in result.stderr
    one = cli(run / "trace" / "rank1.pt.trace.json.gz", "--json")
    assert one.exit_code == 0 and len(json.loads(one.stdout)["ranks"]) == 1


def test_several_windows_of_one_run(tmp_path: Path, analyze_json) -> None:
    run = _run_dir(tmp_path)
    for r in range(2):
        _rank_trace(r, 2, steps=3).write(run / "trace" / f"rank{r}.w2.pt.trace.json.gz")
    doc = analyze_json(run)
    assert sorted((r["window"], r["rank"], r["steps"]) for r in doc["ranks"]) == [
        (0, 0, 2), (0, 1, 2), (1, 0, 3), (1, 1, 3)]


def _mixed_world(d: Path) -> None:
    _rank_trace(0, 2).write(d / "rank0.json")
    _rank_trace(1, 8).write(d / "rank1.json")


def _mixed_variant(d: Path) -> None:
    _rank_trace(0, 2, "baseline").write(d / "rank0.json")
    _rank_trace(1, 2, "overlap").write(d / "rank1.json")


def _golfprof_and_not(d: Path) -> None:
    _rank_trace(0, 2).write(d / "rank0.json")
    TraceBuilder(rank=1, world_size=2).write(d / "b.json")


def _no_rank(d: Path) -> None:
    TraceBuilder(world_size=None).write(d / "a.json")
    TraceBuilder(world_size=None).write(d / "b.json")


def _same_rank_twice(d: Path) -> None:
    TraceBuilder(rank=0, world_size=1).write(d / "a.json")
    TraceBuilder(rank=0, world_size=1).write(d / "b.json")


def _truncated(d: Path) -> None:
    data = gzip.compress(json.dumps(_rank_trace(0, 1).document()).encode())
    (d / "rank0.pt.trace.json.gz").write_bytes(data[: len(data) // 2])


def _not_gzip(d: Path) -> None:
    (d / "rank0.pt.trace.json.gz").write_text(json.dumps(_rank_trace(0, 1).document()))


def _not_json(d: Path) -> None:
    (d / "rank0.json").write_text("<html>not a trace</html>")


def _empty_folder(d: Path) -> None:
    (d / "notes.txt").write_text("nothing here")


def _two_runs_of_one_config(d: Path) -> None:
    """Same variant and config, two runs (their traces copied into one folder): not two windows of one run."""
    for run_id, started in (("a1", "2026-12-01T10:00:00+00:00"), ("b2", "2026-12-01T11:00:00+00:00")):
        for r in range(2):
            b = _rank_trace(r, 2)
            b.golfprof = {**golfprof_meta(r, 2), "run_id": run_id, "run_started": started}
            b.write(d / f"rank{r}.{run_id}.pt.trace.json.gz")


@pytest.mark.parametrize(
    "make, message",
    [
        (_mixed_world, "mixed runs in one folder: world_size 2 (rank0.json) vs world_size 8 (rank1.json)"),
        (_mixed_variant, "mixed runs in one folder: golfprof variant 'baseline' (rank0.json) vs 'overlap' (rank1"),
        (_golfprof_and_not, "mixed runs in one folder: b.json has no golfprof metadata, rank0.json has"),
        (_no_rank, "cannot tell its rank"),
        (_same_rank_twice, "2 traces for rank 0"),
        (_truncated, "truncated gzip stream"),
        (_not_gzip, "named .gz but is not a gzip file"),
        (_not_json, "not a JSON trace"),
        (_empty_folder, "no trace files"),
        (_two_runs_of_one_config, "mixed runs in one folder: two runs of one configuration, rank0.a1.pt.trace.json.gz "
                                  "(run started 2026-12-01T10:00:00+00:00) and rank0.b2.pt.trace.json.gz"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, cli, make, message: str) -> None:
    d = tmp_path / "in"
    d.mkdir()
    make(d)
    result = cli(d)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_missing_path_and_bad_regex(tmp_path: Path, cli) -> None:
    result = cli(tmp_path / "nope")
    assert result.exit_code == 2 and "no such file or directory" in result.stderr
    _run_dir(tmp_path)
    result = cli(tmp_path / "run", "--phases", "golfprof/(")
    assert result.exit_code == 2 and result.stderr.startswith("error: --phases")


def test_every_public_trace_loads_or_is_refused_clearly(public: Path, cli) -> None:
    for folder in sorted(p for p in public.iterdir() if p.is_dir()):
        result = cli(folder, "--json")
        assert result.exit_code in (0, 1), folder
        if result.exit_code == 0:
            doc = json.loads(result.stdout)
            assert doc["ranks"] and all(RANK_KEYS <= set(r) for r in doc["ranks"])
        else:
            assert result.stderr.startswith("error: "), folder
