"""Clocks and ranks: offsets from baseTimeNanoseconds and collective ends, matching by NCCL sequence
number, a lone trace without a rank, and a corrupted gzip named as such."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from golfprof.profiler import phases as ph
from golfprof.traces import load
from golfprof.traces.summary import combine, summarize_rank
from tests.traces.kineto_synth import TraceBuilder, golfprof_meta


def _two_ranks(root: Path, base_shift_ns: int = 0, seq: bool = False, extra_group: bool = False) -> Path:
    """Each step's reduce-scatter ends at s + 10 ms on both ranks; rank 0 waits 7 ms in it for rank 1."""
    for rank in range(2):
        b = TraceBuilder(rank=rank, world_size=2, golfprof=golfprof_meta(rank, 2))
        b.base_ns += base_shift_ns if rank == 1 else 0
        for i, s in enumerate((0.0, 20000.0, 40000.0)):
            b.step(3 + i, s, 20000)
            b.cpu(ph.STEP, s + 5, 19000)
            if extra_group and rank == 1:  # a collective of another process group only rank 1 is in
                b.nccl("reduce_scatter", s + 500, s + 600, 100, seq=i, pg="7")
            dur = 1000 if rank == 1 else 8000
            b.nccl("reduce_scatter", s + 1010, s + 10000 - dur, dur, seq=20 + i if seq else None)
        b.write(root / "trace" / f"rank{rank}.pt.trace.json.gz")
    return root


def test_a_clock_off_by_seconds_is_reported(tmp_path: Path, analyze_json) -> None:
    doc = analyze_json(_two_ranks(tmp_path / "run", base_shift_ns=2_500_000_000))
    clocks = {c["rank"]: c for c in doc["clocks"]}
    assert clocks[0]["offset_us"] == 0 and clocks[1]["offset_us"] == pytest.approx(2.5e6)
    assert clocks[1]["matched"] == 3 and clocks[1]["spread_us"] == pytest.approx(0.0)
    assert doc["ranks"][1]["notes"] == [
        "clock reads 2.500 s ahead of rank 0's (median over 3 collectives' ends, spread 0.0 ms)"]
    assert not [n for n in doc["ranks"][0]["notes"] if "clock" in n]


def test_aligned_clocks_say_nothing(tmp_path: Path, analyze_json) -> None:
    doc = analyze_json(_two_ranks(tmp_path / "run"))
    assert [c["offset_us"] for c in doc["clocks"]] == [0, 0]
    assert not [w for w in doc["warnings"] if "clock" in w]


def test_real_two_rank_trace_has_no_clock_offset(public: Path) -> None:
    """trace_filter: two ranks of a 128-rank run; their all-to-alls end at different times (spread
    tens of ms), so a sub-ms median difference is no clock offset."""
    pattern = re.compile("^golfprof/")
    ranks = [summarize_rank(load.load_trace(public / "trace_filter" / f"sampled_rank-{r}.json.gz"), r, pattern)
             for r in (0, 1)]
    run = combine(ranks, pattern)
    c = run.clocks.set_index("rank")
    assert c.loc[1, "matched"] == 10 and abs(c.loc[1, "offset_us"]) < 1000 < c.loc[1, "spread_us"]
    assert not [n for r in run.ranks for n in r.notes if "clock reads" in n]


def test_collectives_match_by_sequence_number(tmp_path: Path, analyze_json) -> None:
    """Rank 1 runs one more reduce-scatter per step (another process group): the n-th-of-the-step match
    gives up on those steps, the NCCL sequence number still pairs the shared ones."""
    unnumbered = analyze_json(_two_ranks(tmp_path / "a", extra_group=True))
    assert unnumbered["skew"] == []
    doc = analyze_json(_two_ranks(tmp_path / "b", seq=True, extra_group=True))
    s = {x["rank"]: x for x in doc["skew"]}
    assert s[0]["wait_ms_per_step"] == pytest.approx(7.0) and s[0]["waits_for"] == 1 and s[0]["matched"] == 3
    assert s[1]["wait_ms_per_step"] == pytest.approx(0.0)


def test_lone_trace_without_a_rank_is_not_rank_0_of_a_broken_set(tmp_path: Path, cli) -> None:
    b = TraceBuilder(world_size=2)
    b.step(1, 0, 1000)
    b.kernel("gemm", 10, 20, 500)
    doc = b.document()
    del doc["distributedInfo"]["rank"]
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(doc))
    result = cli(path, "--json")
    assert result.exit_code == 0
    assert "ranks missing" not in result.stderr
    assert ("warning: trace.json: the trace records no rank (no distributedInfo.rank, no rank<N> in its name): "
            "analysed as the one trace of a world of 2") in " ".join(result.stderr.split())
    (r,) = json.loads(result.stdout)["ranks"]
    assert r["rank_known"] is False
    table = cli(path).stdout
    assert "rank 0" not in table and "\n   ? " in table


def test_corrupted_gzip_says_so(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flipped byte early in a gzip decodes to bad text long before the CRC at the end is read."""
    monkeypatch.setattr(load, "_CHUNK_CHARS", 1 << 12)  # so a small trace spans many read windows
    b = TraceBuilder()
    for n in range(300):
        b.step(n, n * 1000.0, 1000)
        b.kernel(f"k{n % 7}", n * 1000.0 + 10, n * 1000.0 + 20, 100)
    data = bytearray(gzip.compress(json.dumps(b.document()).encode()))
    data[len(data) // 10] ^= 0x10
    (tmp_path / "rank0.pt.trace.json.gz").write_bytes(bytes(data))
    result = cli(tmp_path)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "corrupt gzip data" in result.stderr and "JSON" not in result.stderr
