"""Read Kineto traces (``.json`` / ``.json.gz``) into columnar frames without holding the document.

A trace of a few steps of the full model runs to tens of MB per rank and users profile more, so
``json.load`` (every event as a dict, all at once) costs 10x the file in RAM. Instead a streaming
reader walks the ``traceEvents`` array one event at a time with the C scanner behind
``json.JSONDecoder.raw_decode`` and keeps only the fields the analysis reads, in typed arrays.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import warnings
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from golfprof.errors import GolfprofWarning, TraceError

_CHUNK_CHARS = 1 << 22
_MAX_VALUE_CHARS = 1 << 28  # one JSON value larger than this is not a trace event
_GZIP_MAGIC = b"\x1f\x8b"
_WS = re.compile(r"[ \t\n\r]*")
_SEP = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")
_DECODER = json.JSONDecoder(strict=False)

# args keys that describe a collective (on NCCL kernels in recent PyTorch, on record_param_comms)
COMM_ARG_KEYS = {
    "Collective name": "collective",
    "In msg nelems": "in_nelems",
    "Out msg nelems": "out_nelems",
    "dtype": "dtype",
    "Group size": "group_size",
    "Process Group Name": "pg_name",
    "Seq": "seq",  # the collective's sequence number in its process group (PyTorch 2.4+)
}


@dataclass
class Trace:
    """One rank's trace: metadata plus one row per complete (``dur``-carrying) event.

    ``events`` columns: cat, name (categorical), pid, tid (categorical, as text), ts, dur (float µs),
    correlation (int, -1 if none), stream (int, -1 if none or not numeric: HTA's coercion).
    ``comm_args`` holds collective args, indexed by ``events`` row.
    ``ts_is_float`` tells whether HTA would round this file to whole µs (it does when any ``ts`` is
    fractional or missing, i.e. when pandas gives the column a float dtype).
    """

    path: Path
    meta: dict[str, Any]
    events: pd.DataFrame
    comm_args: pd.DataFrame
    ts_is_float: bool
    derived: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)  # golfprof.traces.derived


def _open_text(path: Path) -> io.TextIOBase:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
    except IsADirectoryError:
        raise TraceError(f"{path}: is a directory, expected a trace file") from None
    except OSError as e:
        raise TraceError(f"{path}: cannot read ({e.strerror or e})") from None
    if magic == _GZIP_MAGIC:
        raw: io.BufferedIOBase = gzip.open(path, "rb")  # type: ignore[assignment]
    elif path.name.endswith(".gz"):
        raise TraceError(f"{path}: named .gz but is not a gzip file")
    else:
        raw = open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="strict")


class _Reader:
    """A sliding text window over the file so that a bad or truncated file fails cleanly."""

    def __init__(self, path: Path, fh: io.TextIOBase) -> None:
        self.path = path
        self.fh = fh
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.offset = 0  # characters dropped before buf

    def fill(self) -> bool:
        """Append a chunk; False at end of file."""
        if self.eof:
            return False
        try:
            data = self.fh.read(_CHUNK_CHARS)
        except EOFError:
            raise TraceError(f"{self.path}: truncated gzip stream") from None
        except (gzip.BadGzipFile, zlib.error) as e:
            raise TraceError(f"{self.path}: corrupt gzip data ({e})") from None
        except UnicodeDecodeError:
            raise TraceError(f"{self.path}: not a JSON trace (not UTF-8 text)") from None
        except OSError as e:
            raise TraceError(f"{self.path}: cannot read ({e})") from None
        if not data:
            self.eof = True
            return False
        self.offset += self.pos
        self.buf = self.buf[self.pos :] + data
        self.pos = 0
        return True

    def peek(self) -> str:
        """Next non-blank character (not consumed), '' at end of file."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""

    def expect(self, chars: str, what: str) -> str:
        c = self.peek()
        if c == "" or c not in chars:
            raise self.error(f"expected {what}", truncated=c == "")
        self.pos += 1
        return c

    def value(self) -> Any:
        """Decode one JSON value, refilling the window when it crosses the chunk edge."""
        self.peek()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                near_end = e.pos >= len(self.buf) - 64 or e.msg.startswith("Unterminated")
                if self.eof or not near_end:
                    raise self.error(e.msg, truncated=self.eof and near_end) from None
                if len(self.buf) - self.pos > _MAX_VALUE_CHARS:
                    raise self.error("one JSON value larger than a trace event can be", truncated=False) from None
                if not self.fill():
                    raise self.error(e.msg, truncated=True) from None
                continue
            if end == len(self.buf) and self.fill():  # a number may continue in the next chunk
                continue
            self.pos = end
            return obj

    def error(self, msg: str, truncated: bool) -> TraceError:
        if truncated:
            return TraceError(f"{self.path}: truncated JSON (file ends inside the trace)")
        return TraceError(f"{self.path}: not a valid JSON trace ({msg} at char {self.offset + self.pos})")


class _Columns:
    """Typed, append-only columns plus interning tables: about 50 bytes per event."""

    def __init__(self) -> None:
        self.cat = array("i")
        self.name = array("i")
        self.pid = array("i")
        self.tid = array("i")
        self.ts = array("d")
        self.dur = array("d")
        self.corr = array("q")
        self.stream = array("q")
        self.cats: dict[str, int] = {}
        self.names: dict[str, int] = {}
        self.ids: dict[Any, int] = {}
        self.comm: list[tuple[Any, ...]] = []
        self.ts_is_float = False


def _stream_value(s: Any) -> int:
    """HTA coerces args.stream with pd.to_numeric(errors='coerce'), so '0x0' is no stream but '7' is 7."""
    if type(s) is int:
        return s
    try:
        v = float(s)
    except (TypeError, ValueError):
        return -1
    return int(v) if v == v and abs(v) != float("inf") else -1


def _gzip_fault(path: Path) -> str | None:
    """Why a gzip file's stream is bad (CRC, bad deflate data, truncation), None if it is sound or not gzip.

    Deflate has no checksum per block: a flipped byte decodes to wrong text that the JSON parser
    trips over long before the CRC at the end is checked, so a JSON error in a gzip file is checked here.
    """
    try:
        with open(path, "rb") as fh:
            if fh.read(2) != _GZIP_MAGIC:
                return None
        with gzip.open(path, "rb") as gz:
            while gz.read(1 << 24):
                pass
    except EOFError:
        return "truncated gzip stream"
    except (gzip.BadGzipFile, zlib.error) as e:
        return f"corrupt gzip data ({e})"
    except OSError:
        return None
    return None


def _walk(path: Path, cols: _Columns | None) -> dict[str, Any]:
    """:func:`_walk_doc`, with a gzip stream's own fault named rather than the bad JSON it decoded to."""
    try:
        return _walk_doc(path, cols)
    except TraceError as e:
        if "gzip" in str(e).removeprefix(str(path)):  # the gzip layer already named its fault
            raise
        fault = _gzip_fault(path)
        if fault is None:
            raise
        raise TraceError(f"{path}: {fault}, not a readable trace") from None


def _walk_doc(path: Path, cols: _Columns | None, text: io.TextIOBase | None = None) -> dict[str, Any]:
    """Parse the top-level document (the file, or ``text`` already in memory); events go into ``cols``, or the
    walk stops at them if None."""
    meta: dict[str, Any] = {}
    with _open_text(path) if text is None else text as fh:
        r = _Reader(path, fh)
        first = r.peek()
        if first == "":
            raise TraceError(f"{path}: empty file, not a trace")
        if first == "[":  # the Chrome trace format also allows a bare event array
            if cols is not None:
                _walk_array(r, path, cols)
            return meta
        if first != "{":
            raise TraceError(f"{path}: not a JSON trace (starts with {first!r})")
        r.pos += 1
        seen_events = False
        if r.peek() == "}":
            r.pos += 1
        else:
            while True:
                if r.peek() != '"':
                    raise r.error("expected a key", truncated=r.peek() == "")
                key = r.value()
                r.expect(":", "':'")
                if key == "traceEvents":
                    seen_events = True
                    if cols is None:
                        meta["traceEvents"] = None
                        return meta
                    if r.peek() != "[":
                        raise TraceError(f"{path}: traceEvents is not a list")
                    _walk_array(r, path, cols)
                else:
                    meta[key] = r.value()
                if r.expect(",}", "',' or '}'") == "}":
                    break
        if r.peek() != "":
            raise r.error("data after the end of the document", truncated=False)
        if not seen_events:
            raise TraceError(f"{path}: not a Kineto trace (no traceEvents)")
    return meta


def _walk_array(r: _Reader, path: Path, cols: _Columns) -> None:
    try:
        _walk_events(r, cols)
    except (TypeError, AttributeError) as e:  # e.g. an unhashable "cat": JSON, but not a trace
        raise TraceError(f"{path}: malformed trace event ({e})") from None


def _walk_events(r: _Reader, cols: _Columns) -> None:
    """The hot loop: one C-scanner call and a few dict lookups per event, nothing kept but columns."""
    r.expect("[", "'['")
    if r.peek() == "]":
        r.pos += 1
        return
    add = _recorder(cols)
    ts_is_float = False
    for e in _scan_events(r):
        if type(e) is dict:
            ts_is_float = add(e) or ts_is_float
    cols.ts_is_float = cols.ts_is_float or ts_is_float


def _scan_events(r: _Reader) -> Iterator[Any]:
    """Each value of the event array, decoded straight from the reader's window while it holds whole events."""
    scan = _DECODER.scan_once
    sep = _SEP.match
    buf, pos = r.buf, _WS.match(r.buf, r.pos).end()  # type: ignore[union-attr]
    while True:
        try:
            e, end = scan(buf, pos)
            if end == len(buf):
                raise StopIteration(end)
        except (StopIteration, json.JSONDecodeError):  # the window ends inside this event, or bad JSON
            r.pos = pos
            e = r.value()
            buf, end = r.buf, r.pos
        m = sep(buf, end)
        if m is None:
            r.pos = end
            pos = -1
        else:
            pos = m.end()
        yield e
        if pos < 0:  # no ',' straight after the event: the array ends, or the window does
            if r.expect(",]", "',' or ']' between events") == "]":
                return
            buf, pos = r.buf, _WS.match(r.buf, r.pos).end()  # type: ignore[union-attr]


def _recorder(cols: _Columns) -> Callable[[dict[str, Any]], bool]:
    """``add(event)``: one complete event's fields appended to ``cols`` (others skipped); True when its ts is
    not an int (HTA's rounding then applies)."""
    cat_a, name_a, pid_a, tid_a = cols.cat.append, cols.name.append, cols.pid.append, cols.tid.append
    ts_a, dur_a, corr_a, stream_a = cols.ts.append, cols.dur.append, cols.corr.append, cols.stream.append
    cats, names, ids, comm = cols.cats, cols.names, cols.ids, cols.comm
    num = (int, float)

    def add(e: dict[str, Any]) -> bool:
        ts, dur, cat = e.get("ts"), e.get("dur"), e.get("cat")
        if type(dur) in num and type(ts) in num and cat is not None and cat != "Trace":
            c = cats.get(cat)
            if c is None:
                c = cats[cat] = len(cats)
            name = e.get("name", "")
            if type(name) is not str:
                name = str(name)
            n = names.get(name)
            if n is None:
                n = names[name] = len(names)
            pid, tid = e.get("pid"), e.get("tid")
            p = ids.get(pid)
            if p is None:
                p = ids[pid] = len(ids)
            t = ids.get(tid)
            if t is None:
                t = ids[tid] = len(ids)
            corr = stream = -1
            args = e.get("args")
            if type(args) is dict:
                v = args.get("correlation")
                corr = v if type(v) is int else -1
                v = args.get("stream")
                stream = -1 if v is None else v if type(v) is int else _stream_value(v)
                if "Collective name" in args:
                    comm.append((len(cols.ts),) + tuple(args.get(k) for k in COMM_ARG_KEYS))
            cat_a(c)
            name_a(n)
            pid_a(p)
            tid_a(t)
            ts_a(ts)
            dur_a(dur)
            corr_a(corr)
            stream_a(stream)
        return type(ts) is not int

    return add


def read_header(path: Path) -> dict[str, Any]:
    """Top-level keys written before ``traceEvents`` (Kineto puts distributedInfo and add_metadata_json there)."""
    return _walk(Path(path), None)


def load_trace(path: Path, text: str | None = None) -> Trace:
    """Stream one trace file into a :class:`Trace`; raises :class:`TraceError` on bad input. With ``text``, the
    trace is that JSON, already in memory (the predictor's, which ``path`` will name): the same scanner reads it,
    and no file is written or read."""
    path = Path(path)
    cols = _Columns()
    meta = _walk(path, cols) if text is None else _walk_doc(path, cols, io.StringIO(text))
    names = pd.Index(list(cols.names), dtype=object)
    cats = pd.Index(list(cols.cats), dtype=object)
    ids = pd.Index([str(k) for k in cols.ids], dtype=object)
    if not ids.is_unique:  # pid 1 and pid "1" are one process to the trace viewer as well
        ids = pd.Index([f"{k!r}" for k in cols.ids], dtype=object)

    def codes(a: array) -> np.ndarray:
        return np.frombuffer(a, dtype=np.int32) if len(a) else np.zeros(0, np.int32)

    def cat_col(a: array, cats_: pd.Index) -> pd.Categorical:
        return pd.Categorical.from_codes(codes(a), categories=cats_, validate=False)

    events = pd.DataFrame(
        {
            "cat": cat_col(cols.cat, cats),
            "name": cat_col(cols.name, names),
            "pid": cat_col(cols.pid, ids),
            "tid": cat_col(cols.tid, ids),
            "ts": np.frombuffer(cols.ts, dtype=np.float64) if len(cols.ts) else np.zeros(0),
            "dur": np.frombuffer(cols.dur, dtype=np.float64) if len(cols.dur) else np.zeros(0),
            "correlation": np.frombuffer(cols.corr, dtype=np.int64) if len(cols.corr) else np.zeros(0, np.int64),
            "stream": np.frombuffer(cols.stream, dtype=np.int64) if len(cols.stream) else np.zeros(0, np.int64),
        },
        copy=False,
    )
    comm_args = pd.DataFrame(cols.comm, columns=["row", *COMM_ARG_KEYS.values()]).set_index("row")
    events, comm_args = _drop_impossible(path, events, comm_args)
    return Trace(path=path, meta=meta, events=events, comm_args=comm_args, ts_is_float=cols.ts_is_float)


def _drop_impossible(path: Path, events: pd.DataFrame, comm_args: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events with a negative duration or a NaN/inf timestamp or duration cannot be placed on a timeline: they are
    dropped with a warning that counts them (rows renumbered, the collectives' argument rows with them)."""
    ts, dur = events["ts"].to_numpy(), events["dur"].to_numpy()
    bad = ~np.isfinite(ts) | ~np.isfinite(dur) | (dur < 0)
    if not bad.any():
        return events, comm_args
    negative, non_finite = int((np.isfinite(dur) & (dur < 0)).sum()), int((~np.isfinite(ts) | ~np.isfinite(dur)).sum())
    warnings.warn(f"{path}: {int(bad.sum())} event(s) dropped: {negative} with a negative duration, {non_finite} "
                  "with a NaN or infinite timestamp or duration", GolfprofWarning, stacklevel=3)
    keep = ~bad
    position = np.cumsum(keep) - 1
    if len(comm_args):
        rows = comm_args.index.to_numpy(dtype=np.int64)
        comm_args = comm_args[keep[rows]]
        comm_args.index = position[comm_args.index.to_numpy(dtype=np.int64)]
    return events[keep].reset_index(drop=True), comm_args
