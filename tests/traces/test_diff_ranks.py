"""`golfprof diff RUN --ranks A,B` compares two ranks of one run; `--kernel-names full` keeps the
tile-size variants of a GEMM apart that the grouped names fold together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import Result

from golfprof.traces.kernels import kernel_table
from golfprof.traces.load import load_trace
from tests.cli import invoke
from tests.traces.kineto_synth import TraceBuilder
from tests.traces.test_before_window import queued_run
from tests.traces.trace_dirs import GPU_TRACES

TILE_A = "nvjet_sm90_tst_256x128_64x4_2x1_v_bz_TNT"
TILE_B = "nvjet_sm90_tst_128x128_64x4_2x1_v_bz_TNT"


def _diff(*args: object) -> Result:
    return invoke("diff", *args)


def _json(*args: object) -> dict:
    result = _diff(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_rank_against_rank_within_one_run(tmp_path: Path) -> None:
    run = queued_run(tmp_path / "run")  # rank 0's reduce-scatters take 0.8 ms, rank 1's 0.3 ms
    (r,) = _json(run, "--ranks", "0,1", "--phases", "^phase:")["ranks"]
    assert (r["rank"], r["rank_b"]) == (0, 1)
    (p,) = r["phases"]
    assert p["phase"] == "phase:train" and p["gpu_busy_ms_delta"] == pytest.approx(-1.5)
    assert p["exposed_comm_ms_delta"] == pytest.approx(-1.5)
    assert r["collectives"] == [] and r["kernels"]["appeared"] == [] and r["kernels"]["vanished"] == []
    text = _diff(run, "--ranks", "0,1", "--phases", "^phase:").stdout
    assert "rank 0 → 1: step 10.00 → 10.00 ms" in text and "phases, rank 0 → 1" in text


def test_ranks_that_are_not_there_and_bad_forms(tmp_path: Path) -> None:
    run = queued_run(tmp_path / "run")
    for args, message in (((run, "--ranks", "0,5"), "--ranks 0,5: B has no rank 5 (it has [0, 1])"),
                          ((run, "--ranks", "0-1"), "--ranks '0-1': expected two ranks"),
                          ((run,), "give RUN_B, or --ranks A,B"),
                          ((run, run, "--kernel-names", "short"), "--kernel-names 'short': valid: grouped, full")):
        result = _diff(*args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)


def _tiles(root: Path, name: str) -> Path:
    b = TraceBuilder()
    for n in range(2):
        b.step(n, n * 1000.0, 1000)
        b.cpu("golfprof/step/forward", n * 1000.0 + 5, 900)
        b.kernel(name, n * 1000.0 + 10, n * 1000.0 + 20, 500)
    return b.write(root / "rank0.json")


def test_full_kernel_names_keep_tile_variants_apart(tmp_path: Path) -> None:
    a, b = _tiles(tmp_path / "a", TILE_A), _tiles(tmp_path / "b", TILE_B)
    assert _json(a, b)["empty"]  # grouped: nvjet_sm#_tst_#x#_#x#_#x#_v_bz_TNT on both sides
    (r,) = _json(a, b, "--kernel-names", "full")["ranks"]
    assert [k["kernel"] for k in r["kernels"]["appeared"]] == [TILE_B]
    assert [k["kernel"] for k in r["kernels"]["vanished"]] == [TILE_A]


def test_full_kernel_names_on_real_h100_traces() -> None:
    """Compiled vs eager, one H100: grouped names fold GEMM configurations that full names show."""
    a, b = GPU_TRACES / "h100_full_compiled_1mb", GPU_TRACES / "h100_full_eager_1mb"
    if not (a / "trace").is_dir():
        pytest.skip("recorded GPU traces not found")

    def names(doc: dict) -> set[str]:
        k = doc["ranks"][0]["kernels"]
        return {x["kernel"] for part in ("appeared", "vanished", "changed") for x in k[part] if "nvjet" in x["kernel"]}

    grouped, full = names(_json(a, b, "--top", "500")), names(_json(a, b, "--top", "500", "--kernel-names", "full"))
    assert grouped and all("#" in n for n in grouped) and full and not any("#" in n for n in full)
    trace = load_trace(a / "trace" / "rank0.pt.trace.json.gz")
    variants = [(k["kernel"].str.contains("nvjet")).sum() for k in (kernel_table(trace), kernel_table(trace, False))]
    assert variants == [17, 20]  # three GEMM configurations that grouping folds into others
