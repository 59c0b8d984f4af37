"""The analysis as a JSON-ready dict and as rich tables; no computation beyond formatting."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import metrics
from .diagnose import Diagnosis
from .display import fmt_bytes, fmt_ms, short_names, shown_ranks
from .summary import RankSummary, RunSummary

_PHASE_NUMBERS = ["cpu_ms", "gpu_kernel_ms", "gpu_copy_ms", "gpu_busy_ms", "comm_ms", "exposed_comm_ms", "gpu_self_ms",
                  "gpu_idle_ms", "sync_ms", "kernels", "copies", "calls"]


def _num(v: Any, digits: int = 3) -> Any:
    """JSON-safe number: NaN/inf become null, numpy scalars plain numbers, floats rounded for reading."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    f = float(v)
    if math.isnan(f) or math.isinf(f):
        return None
    return round(f, digits)


def _before_json(b: pd.DataFrame) -> dict[str, Any]:
    """Work launched before the window: totals (ms over the whole trace) and the largest kernels."""
    comm = b[b["cls"] == metrics.COMM]
    return {"gpu_ms": _num(b["ms"].sum()), "kernels": int(b["count"].sum()), "comm_ms": _num(comm["ms"].sum()),
            "collectives": int(comm["count"].sum()),
            "top": [{"kernel": row["kernel"], "op": row["op"] or None, "count": int(row["count"]),
                     "ms": _num(row["ms"])}
                    for row in b.head(10).to_dict("records")]}


def _rank_json(r: RankSummary) -> dict[str, Any]:
    phases = {}
    for name, row in r.phases.iterrows():
        phases[str(name)] = {k: _num(row[k]) for k in _PHASE_NUMBERS} | {
            "parent": row["parent"] if isinstance(row["parent"], str) else None,
            "depth": int(row["depth"]),
        }
    hta = r.hta
    return {
        "rank": r.rank,
        "rank_known": r.rank_known,
        "window": r.window,
        "file": str(r.path),
        "steps": r.steps,
        "step_numbers": r.step_numbers,
        "step_ms": _num(r.step_ms),
        "gpu": r.has_gpu,
        "gpu_busy_pct": _num(r.gpu_busy_pct, 2),
        "idle_pct": _num(hta.idle_pct if hta else None, 2),
        "compute_pct": _num(hta.compute_pct if hta else None, 2),
        "comm_comp_overlap_pct": _num(r.overlap_pct, 2),
        "hta_overlap_pct": _num(hta.overlap_pct if hta else None, 2),
        "comm_ms": _num(r.comm_ms),
        "exposed_comm_ms": _num(r.exposed_comm_ms),
        "unattributed_gpu_ms": _num(r.unattributed_gpu_ms),
        "before_window": _before_json(r.before),
        "window_check": None if r.window_check is None else {k: _num(v) if not isinstance(v, dict) else
                                                             {str(s): _num(ms) for s, ms in v.items()}
                                                             for k, v in r.window_check.items()},
        "phases": phases,
        "collectives": [{k: _num(v) for k, v in row.items()} for row in r.collectives.to_dict("records")],
        "recorded_collectives": [{k: bool(v) if isinstance(v, (bool, np.bool_)) else _num(v) for k, v in row.items()}
                                 for row in r.recorded.to_dict("records")],
        "notes": r.notes,
    }


def _skew_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: _num(v) for k, v in row.items()}
    peer = row["waits_for"]
    out["waits_for"] = None if peer is None or peer != peer else int(peer)  # a float column when any is NaN
    return out


def to_json(path: str, runs: list[RunSummary], diagnoses: list[Diagnosis], warnings: list[str]) -> dict[str, Any]:
    """The ``--json`` document; ``ranks`` holds one entry per rank and profiling window."""
    skew = pd.concat([run.skew.assign(window=i) for i, run in enumerate(runs)], ignore_index=True)
    return {
        "path": path,
        "phase_regex": runs[0].phase_regex if runs else None,
        "ranks": [_rank_json(r) for run in runs for r in run.ranks],
        "skew": [_skew_json(row) for row in skew.to_dict("records")],
        "clocks": [{k: _num(v) for k, v in row.items()} | {"window": i}
                   for i, run in enumerate(runs) for row in run.clocks.to_dict("records")],
        "diagnoses": [
            {"kind": d.kind, "message": d.message, "ranks": d.ranks, "cost_ms": _num(d.cost_ms),
             "numbers": {k: _num(v) for k, v in d.numbers.items()}}
            for d in diagnoses
        ],
        "warnings": warnings,
    }


def _f(v: Any, fmt: str = ".2f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, fmt)


def _table(title: str, columns: list[str], rows: list[list[str]], left: int = 0) -> Table:
    """Names from traces may hold '[...]', which rich would read as markup: escape every cell.

    No vertical rules and one space between columns, so that the tables fit 80 columns.
    """
    t = Table(title=escape(title), box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=0,
              title_justify="left")
    for i, c in enumerate(columns):
        if i < left:  # names: one line each (phase names come cut to fit, see display.short_names)
            t.add_column(c, justify="left", no_wrap=True, overflow="ellipsis")
        else:  # numbers: a short header on one line, a longer one never narrower than its longest word
            t.add_column(c, justify="right", min_width=len(c) if len(c) <= 10 else max(len(w) for w in c.split()))
    for row in rows:
        t.add_row(*(escape(c) for c in row))
    return t


def rank_label(r: RankSummary) -> str:
    return str(r.rank) if r.rank_known else "?"


def _rank_table(runs: list[RunSummary], windows: bool) -> Table:
    cols = ["rank", "steps", "step ms", "busy %", "ovl %", "HTA ovl %", "HTA idle %", "comm", "exposed", "before"]
    rows = []
    for run in runs:
        for r in run.ranks:
            h = r.hta
            before = r.before["ms"].sum() if not r.before.empty else None
            row = [rank_label(r), str(r.steps), fmt_ms(r.step_ms), _f(r.gpu_busy_pct, ".1f"), _f(r.overlap_pct, ".1f"),
                   _f(h.overlap_pct if h else None, ".1f"), _f(h.idle_pct if h else None, ".1f"), fmt_ms(r.comm_ms),
                   fmt_ms(r.exposed_comm_ms), fmt_ms(before)]
            rows.append([str(r.window), *row] if windows else row)
    return _table("ranks: ms per profiled step; ovl % is golfprof's overlap (GPU kernels, every step), HTA's "
                  "beside it; before: ms of GPU work launched before the window",
                  ["window", *cols] if windows else cols, rows)


_PHASE_NUMBERS_WIDTH = 48  # the phase table's seven number columns and their gaps


def _phase_table(r: RankSummary, title: str, width: int) -> Table:
    """Full phase names when they fit ``width`` (piped output is 200 wide), else short ones (display.short_names)."""
    p = r.phases
    names = [str(n) for n in p.index]
    room = width - _PHASE_NUMBERS_WIDTH - int(p["depth"].max())
    short = {n: n for n in names} if max(map(len, names)) <= room else short_names(names, list(p["parent"]),
                                                                                    max(12, room))
    rows = [
        [" " * int(row["depth"]) + short[str(name)], fmt_ms(row["cpu_ms"]), fmt_ms(row["sync_ms"]),
         fmt_ms(row["gpu_busy_ms"]), fmt_ms(row["gpu_idle_ms"]), fmt_ms(row["comm_ms"]), fmt_ms(row["exposed_comm_ms"]),
         _f(row["kernels"], ".0f")]
        for name, row in p.iterrows()
    ]
    cols = ["phase", "CPU", "sync", "busy", "idle", "comm", "exposed", "kernels"]
    return _table(title, cols, rows, left=1)


def _collective_table(r: RankSummary, title: str) -> Table:
    rows = []
    for _, c in r.collectives.iterrows():
        how = "/".join(x for x in (c["algo"], c["proto"]) if x) or "–"
        rows.append([c["op"], c["dtype"] or "–", how, _f(c["count_per_step"], ".1f"), fmt_ms(c["ms_per_step"]),
                     _f(c["median_us"], ".0f"), fmt_bytes(c["median_bytes"]), fmt_ms(c["exposed_ms_per_step"])])
    cols = ["op", "dtype", "algo", "/step", "ms/step", "med µs", "med size", "exposed"]
    return _table(title, cols, rows, left=3)


def _recorded_table(r: RankSummary, title: str) -> Table:
    rows = [[c["op"], c["dtype"] or "–", c["phase"] or "–", _f(c["count_per_step"], ".1f"),
             fmt_bytes(c["bytes_per_step"]), fmt_bytes(c["median_bytes"]) + (" (data-sized)" if c["data_dependent"]
                                                                              else "")]
            for _, c in r.recorded.iterrows()]
    return _table(title, ["op", "dtype", "phase", "/step", "bytes/step", "med size"], rows, left=3)


def _skew_table(waits: pd.DataFrame) -> Table:
    rows = [[str(s["rank"]), s["op"], "–" if s["waits_for"] is None or s["waits_for"] != s["waits_for"]
             else str(int(s["waits_for"])), fmt_ms(s["wait_ms_per_step"]), fmt_ms(s["comm_ms_per_step"])]
            for _, s in waits.iterrows()]
    return _table("rank skew: ms per step waiting for the slowest peer in matched collectives",
                  ["rank", "op", "waits for", "wait", "of comm"], rows, left=2)


def _notes(run: RunSummary, windows: bool) -> list[str]:
    """Each rank's notes, one line per distinct note with the ranks that have it."""
    by_note: dict[str, list[str]] = {}
    for r in run.ranks:
        for n in r.notes:
            by_note.setdefault(n, []).append(rank_label(r))
    where = f", window {run.ranks[0].window}" if windows and run.ranks else ""
    return [f"rank{'s' if len(rs) > 1 else ''} {', '.join(rs)}{where}: {n}" for n, rs in by_note.items()]


def render(console: Console, runs: list[RunSummary], diagnoses: list[Diagnosis]) -> None:
    """Rank overview, notes, the phase and collective tables of every rank (of the late and earliest
    rank when there are more than two), skew, findings."""
    windows = len(runs) > 1
    console.print(_rank_table(runs, windows))
    for run in runs:
        for note in _notes(run, windows):
            console.print(f"[yellow]{escape(note)}[/yellow]")
        shown = shown_ranks([r.rank for r in run.ranks], run.skew, {r.rank: r.step_ms for r in run.ranks})
        if len(shown) < len(run.ranks):
            which = (f"rank {shown[0]} (the others wait for it) and rank {shown[1]} (waits longest)"
                     if len(shown) > 1 else f"rank {shown[0]}")
            console.print(f"{len(run.ranks)} ranks: the tables show {which}; --json has every rank", highlight=False)
        for r in (r for r in run.ranks if r.rank in shown):
            where = f"rank {rank_label(r)}" + (f", window {r.window}" if windows else "")
            if not r.phases.empty:
                console.print(_phase_table(r, f"phases, {where}: ms per step", console.width))
            if not r.collectives.empty:
                console.print(_collective_table(r, f"collectives, {where}: per step"))
            if not r.recorded.empty:
                console.print(_recorded_table(r, f"collectives issued, {where}: per step (recorded by golfprof)"))
        if not run.skew.empty and (run.skew["wait_ms_per_step"] > 0).any():
            console.print(_skew_table(run.skew[run.skew["wait_ms_per_step"] > 0]))
    if diagnoses:
        console.print("[bold]findings[/bold]")
        for d in diagnoses:
            console.print(f"  • {escape(d.message)}")
    else:
        console.print("findings: none above the reporting thresholds")


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _num(v) for k, v in row.items()} for row in df.to_dict("records")]


def diff_json(a: str, b: str, diffs: list, steps: dict[int, tuple[float | None, float | None]],
              pairs: dict[int, int] | None = None) -> dict[str, Any]:
    """The ``golfprof diff --json`` document; with ``pairs`` (A's rank -> B's) each entry has ``rank_b``."""
    ranks = []
    for d in diffs:
        sa, sb = steps[d.rank]
        deltas = d.phases[[f"{c}_delta" for c in ("cpu_ms", "gpu_busy_ms", "exposed_comm_ms")]]
        moved = d.phases[(deltas.abs() > 1e-9).any(axis=1)]
        ranks.append({"rank": d.rank, "step_ms_a": _num(sa), "step_ms_b": _num(sb),
                      "step_ms_delta": _num(sb - sa) if sa is not None and sb is not None else None,
                      "phases": _records(moved), "kernels": {"appeared": _records(d.appeared),
                                                              "vanished": _records(d.vanished),
                                                              "changed": _records(d.changed)},
                      "kernel_families": _records(d.families),
                      "collectives": _records(d.collectives), "notes": d.notes, "empty": d.empty}
                     | ({"rank_b": pairs[d.rank]} if pairs else {}))
    return {"a": a, "b": b, "empty": all(r["empty"] for r in ranks), "ranks": ranks}


def render_diff(console: Console, diffs: list, steps: dict[int, tuple[float | None, float | None]],
                pairs: dict[int, int] | None = None) -> None:
    """Per rank (per rank pair of ``pairs``, A's rank -> B's, when ranks are compared): steps, phases, kernels."""
    for d in diffs:
        sa, sb = steps[d.rank]
        label = f"{d.rank} → {pairs[d.rank]}" if pairs else str(d.rank)
        head = f"rank {label}: step {_f(sa)} → {_f(sb)} ms"
        if d.empty:
            console.print(f"{head}: no difference", highlight=False)
            continue
        console.print(head, highlight=False)
        p = d.phases
        moved = p[(p[["cpu_ms_delta", "gpu_busy_ms_delta", "exposed_comm_ms_delta"]].abs() > 1e-9).any(axis=1)]
        moved = moved.reindex(moved["gpu_busy_ms_delta"].abs().sort_values(ascending=False, kind="stable").index)
        console.print(_table(f"phases, rank {label}: ms per step (A → B)",
                             ["phase", "CPU A", "CPU B", "Δ CPU", "GPU A", "GPU B", "Δ GPU", "Δ exposed comm"],
                             [[r.phase, _f(r.cpu_ms_a), _f(r.cpu_ms_b), _f(r.cpu_ms_delta), _f(r.gpu_busy_ms_a),
                               _f(r.gpu_busy_ms_b), _f(r.gpu_busy_ms_delta), _f(r.exposed_comm_ms_delta)]
                              for r in moved.itertuples()], left=1))
        for title, df in (("appeared in B", d.appeared), ("vanished from A", d.vanished), ("changed most", d.changed)):
            if len(df):
                console.print(_table(f"kernels {title}, rank {label} (per step)",
                                     ["kernel", "count A", "count B", "ms A", "ms B", "Δ ms"],
                                     [[r.kernel[:90], _f(r.count_per_step_a, ".1f"), _f(r.count_per_step_b, ".1f"),
                                       _f(r.ms_per_step_a, ".3f"), _f(r.ms_per_step_b, ".3f"), _f(r.ms_delta, ".3f")]
                                      for r in df.itertuples()], left=1))
        fam = d.families
        if len(fam) and (fam["ms_delta"].abs() > 1e-9).any():
            console.print(_table(f"kernel families, rank {label} (per step)",
                                 ["family", "count A", "count B", "ms A", "ms B", "Δ ms"],
                                 [[r.kernel, _f(r.count_per_step_a, ".1f"), _f(r.count_per_step_b, ".1f"),
                                   _f(r.ms_per_step_a, ".3f"), _f(r.ms_per_step_b, ".3f"), _f(r.ms_delta, ".3f")]
                                  for r in fam.itertuples()], left=1))
        if len(d.collectives):
            console.print(_table(f"collectives that changed, rank {label} (per step)",
                                 ["op", "dtype", "algo", "count A", "count B", "size A", "size B", "Δ ms"],
                                 [[r.op, str(r.dtype), str(r.algo), _f(r.count_per_step_a, ".1f"),
                                   _f(r.count_per_step_b, ".1f"), fmt_bytes(r.median_bytes_a),
                                   fmt_bytes(r.median_bytes_b), _f(r.ms_delta, ".3f")]
                                  for r in d.collectives.itertuples()], left=3))
        for n in d.notes:
            console.print(f"note: {n}", highlight=False)
