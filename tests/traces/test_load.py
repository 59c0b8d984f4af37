"""The streaming loader: same frame whatever the layout, bounded memory, one-line errors."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

from golfprof.traces import load
from golfprof.traces.load import TraceError, load_trace, read_header
from tests.traces.kineto_synth import TraceBuilder


def _builder() -> TraceBuilder:
    b = TraceBuilder(rank=3, world_size=4)
    b.step(7, 0, 1000)
    b.cpu('golfprof/step "quoted" {braces} [brackets] ünïcode \\ back', 1.5, 900)
    b.kernel("k1", 2, 10.125, 5.5)
    b.nccl("all_reduce", 3, 20, 30, nelems=1024)
    return b


def _frame(path: Path) -> pd.DataFrame:
    ev = load_trace(path).events
    return ev.assign(**{c: ev[c].astype(str) for c in ("cat", "name", "pid", "tid")})


def test_layouts_give_the_same_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = _builder()
    ref = _frame(b.write(tmp_path / "a.json"))
    assert len(ref) == 6  # 2 ranges, 2 launches, 2 kernels; flows and metadata carry no dur, Trace is dropped
    for p in (b.write(tmp_path / "b.json.gz"), b.write(tmp_path / "c.json", compact=True)):
        pd.testing.assert_frame_equal(_frame(p), ref)
    monkeypatch.setattr(load, "_CHUNK_CHARS", 7)  # every event crosses window edges
    pd.testing.assert_frame_equal(_frame(tmp_path / "a.json"), ref)
    pd.testing.assert_frame_equal(_frame(tmp_path / "c.json"), ref)


def test_a_trace_in_memory_loads_as_its_file_does(tmp_path: Path) -> None:
    """The predictor hands its predicted trace over as text: the same frames as the file, and no file read."""
    b = _builder()
    path = b.write(tmp_path / "a.json")
    text = path.read_text()
    path.unlink()
    mem, missing = load_trace(tmp_path / "rank3.pt.trace.json.gz", text=text), tmp_path / "rank3.pt.trace.json.gz"
    assert mem.path == missing and not missing.exists()
    ref = load_trace(b.write(tmp_path / "b.json"))
    pd.testing.assert_frame_equal(mem.events, ref.events)
    pd.testing.assert_frame_equal(mem.comm_args, ref.comm_args)
    assert mem.meta == ref.meta and mem.ts_is_float == ref.ts_is_float


def test_fields_metadata_and_comm_args(tmp_path: Path) -> None:
    t = load_trace(_builder().write(tmp_path / "t.json.gz"))
    assert t.meta["distributedInfo"] == {"backend": "nccl", "rank": 3, "world_size": 4}
    assert t.meta["traceName"] == "synthetic"  # keys after traceEvents are kept too
    assert t.ts_is_float
    ev = t.events
    k = ev[ev["name"] == "k1"].iloc[0]
    assert (k["cat"], k["stream"], k["dur"]) == ("kernel", 7, 5.5)
    launch = ev[(ev["cat"] == "cuda_runtime") & (ev["correlation"] == k["correlation"])]
    assert len(launch) == 1 and launch.iloc[0]["stream"] == -1
    assert "Trace" not in set(ev["cat"])
    (row,) = t.comm_args.itertuples()
    assert (row.collective, row.in_nelems, row.dtype) == ("allreduce", 1024, "BFloat16")
    assert ev.loc[row.Index, "name"].startswith("ncclDevKernel_AllReduce")


def test_integer_timestamps_are_not_float(tmp_path: Path) -> None:
    doc = {"traceEvents": [{"ph": "X", "cat": "kernel", "name": "k", "pid": 0, "tid": 7, "ts": 10, "dur": 2,
                            "args": {"stream": "0x7", "correlation": 3}}]}
    p = tmp_path / "t.json"
    p.write_text(json.dumps(doc))
    t = load_trace(p)
    assert not t.ts_is_float
    assert t.events["stream"].tolist() == [-1]  # HTA's pd.to_numeric coercion: hex strings are no stream
    doc["traceEvents"].append({"ph": "M", "name": "process_name", "pid": 0, "args": {}})  # no ts at all
    p.write_text(json.dumps(doc))
    assert load_trace(p).ts_is_float


def test_bare_event_array(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_text(json.dumps(_builder().document()["traceEvents"]))
    assert len(load_trace(p).events) == 6


def test_header_stops_at_trace_events(tmp_path: Path) -> None:
    p = _builder().write(tmp_path / "t.json")
    h = read_header(p)
    assert h["distributedInfo"]["rank"] == 3 and "traceName" not in h


def _peak_bytes(path: Path) -> int:
    tracemalloc.start()
    load_trace(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_memory_grows_far_slower_than_the_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only typed columns grow with the trace (json.load would hold every event as a dict)."""
    args = {"Input Dims": [[1024, 768], [768]], "Input type": ["float", "float"], "Concrete Inputs": ["", ""]}
    sizes, peaks = [], []
    for n in (5000, 15000):
        b = TraceBuilder()
        b.step(1, 0, 1e6)
        for i in range(n):
            b.cpu("aten::linear", 10 + i * 40, 30, cat="cpu_op", args=args)
        p = b.write(tmp_path / f"t{n}.json")
        sizes.append(p.stat().st_size)
        monkeypatch.setattr(load, "_CHUNK_CHARS", 1 << 18)
        load_trace(p)  # warm imports and caches
        peaks.append(_peak_bytes(p))
    growth = (peaks[1] - peaks[0]) / (sizes[1] - sizes[0])
    assert growth < 0.25, f"{growth:.2f} bytes of memory per byte of trace"


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


VALID = json.dumps(_builder().document()).encode()


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("cut.json", VALID[: len(VALID) // 2], "truncated JSON"),
        ("cut.json.gz", gzip.compress(VALID, mtime=0)[:300], "truncated gzip"),  # one id in every pytest worker
        ("plain.json.gz", VALID, "named .gz but is not a gzip file"),
        ("text.json", b"hello, world", "not a JSON trace"),
        ("empty.json", b"", "empty file"),
        ("other.json", b'{"a": 1, "b": [1, 2]}', "no traceEvents"),
        ("notlist.json", b'{"traceEvents": {"a": 1}}', "traceEvents is not a list"),
        ("badevent.json", b'{"traceEvents": [{"ph": "X", "ts": 1, "dur": 1, "cat": [1]}]}', "malformed trace event"),
        ("garbage.json", b'{"traceEvents": [{"ph": "X", "ts": 1, "dur": 2, "cat": "k"} oops]}', "not a valid JSON"),
        ("latin1.json", '{"traceEvents": [{"name": "caf\xe9"}]}'.encode("latin-1"), "not UTF-8"),
        ("trailing.json", b'{"traceEvents": []} {}', "data after the end"),
    ],
)
def test_bad_files_raise_one_line_trace_errors(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    with pytest.raises(TraceError) as e:
        load_trace(_write(tmp_path / name, data))
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(tmp_path / name) in str(e.value)
