"""`golfprof analyze PATH --merged-trace OUT`: every rank in one Perfetto trace, one process per rank,
clocks aligned (base time and measured offset), phases kept."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from golfprof.profiler import phases as ph
from golfprof.traces.load import load_trace
from tests.traces.test_clocks_ranks import _two_ranks


def _events(path: Path) -> list[dict]:
    return json.loads(gzip.decompress(path.read_bytes()))["traceEvents"]


def test_ranks_side_by_side_on_one_clock(tmp_path: Path, cli) -> None:
    run = _two_ranks(tmp_path / "run", base_shift_ns=2_500_000_000)  # rank 1's clock reads 2.5 s ahead
    out = tmp_path / "merged.json.gz"
    result = cli(run, "--json", "--merged-trace", out)
    assert result.exit_code == 0, result.output
    assert f"merged trace: {out}: 2 rank(s)" in " ".join(result.stderr.split())
    ev = _events(out)
    names = {e["pid"]: e["args"]["name"] for e in ev if e["name"] == "process_name"}
    assert names == {0: "rank 0", 1: "rank 1"}
    threads = {(e["pid"], e["args"]["name"]) for e in ev if e["name"] == "thread_name"}
    assert {(0, "GPU 0 stream 20"), (1, "GPU 0 stream 20"), (0, "CPU 4242 thread 1111")} <= threads
    ends = {r: sorted(e["ts"] + e["dur"] for e in ev if e["pid"] == r and e.get("cat") == "kernel") for r in (0, 1)}
    assert len(ends[0]) == 3 and ends[0] == pytest.approx(ends[1], abs=1e-3)  # they finish together
    assert min(e["ts"] for e in ev if e["ph"] == "X") == 0
    assert {e["name"] for e in ev if e.get("cat") == "user_annotation"} >= {ph.STEP, "ProfilerStep#3"}
    for r in (0, 1):
        loaded = load_trace(run / "trace" / f"rank{r}.pt.trace.json.gz").events
        assert sum(1 for e in ev if e["ph"] == "X" and e["pid"] == r) == len(loaded)


def test_a_real_trace_keeps_every_event(public: Path, cli, tmp_path: Path) -> None:
    path = next((public / "nccl_parser_config").glob("*.json.gz"))
    out = tmp_path / "merged.json"
    assert cli(path, "--merged-trace", out).exit_code == 0
    ev = json.loads(out.read_text())["traceEvents"]
    loaded = load_trace(path).events
    x = [e for e in ev if e["ph"] == "X"]
    assert len(x) == len(loaded) and {e["pid"] for e in x} == {0}
    assert sum(e["dur"] for e in x if e["cat"] == "kernel") == pytest.approx(
        loaded.loc[loaded["cat"] == "kernel", "dur"].sum())


def test_unwritable_output_is_one_line(tmp_path: Path, cli) -> None:
    run = _two_ranks(tmp_path / "run")
    result = cli(run, "--merged-trace", tmp_path / "no" / "such" / "dir" / "m.json")
    assert result.exit_code == 2 and "cannot write the merged trace" in result.stderr
