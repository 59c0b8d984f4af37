"""The CLI's output tables: one run's summary, a prediction, a matrix's comparison, a sweep, a cost table.

Printing only: every figure is computed elsewhere (the run's summary, ``results.comparison``, the
cost model); here it is laid out for a terminal. Piped output keeps a wide console, so that tables
are not squeezed into 80 columns.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout and sys.stdout.isatty() else 200)  # piped: do not squeeze tables

_SUMMARY_FORMATS = {"ms_per_step": "{:.2f}", "optimizer_ms": "{:.3f}", "forward_backward_ms": "{:.2f}",
                    "tokens_per_s": "{:,.0f}", "model_tflops_per_gpu": "{:.3g}", "mfu_pct": "{:.2f}",
                    "peak_memory_mb": "{:,.0f}", "final_loss": "{:.4f}",
                    "val_loss": "{:.4f}", "val_bits_per_token": "{:.4f}", "val_bpb": "{:.4f}"}


def fmt(v: Any, digits: int = 2) -> str:
    """A number with thousands separators, '—' for a missing one (None or NaN)."""
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    return f"{v:,.{digits}f}"


def _metric_table(title: str, rows: list[tuple[str, str]]) -> Table:
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in rows:
        t.add_row(k, v)
    return t


def print_summary(s: dict[str, Any]) -> None:
    """One finished run: its headline figures and where it was written."""
    rows = [(k, f.format(s[k])) for k, f in _SUMMARY_FORMATS.items() if s.get(k) is not None]
    console.print(_metric_table(f"{s['variant']} · {s['preset']} · world {s['world_size']} · {s['device']}", rows))
    from golfprof.results.health import run_notes

    for note in run_notes(s):  # the window check of a profiled run, a GPU that throttled
        console.print(f"note: {note}", highlight=False)
    console.print(f"run directory: {s['run_dir']}", highlight=False)


def _span(iv: list[float]) -> str:
    return f"[{fmt(iv[0])}, {fmt(iv[1])}]"


def _interval_rows(p: dict[str, Any]) -> list[tuple[str, Any]]:
    """The prediction's interval and, with --target-gpu, the target's step and interval beside the source's."""
    rows: list[tuple[str, Any]] = [("predicted interval ms", _span(p["interval_ms"]))] if p.get("interval_ms") else []
    tgt = p.get("target")
    if tgt:
        src = p.get("source_gpu", {}).get("key", "the source GPU")
        rows = [(f"  on {src}: ms/step, interval", f"{fmt(p['ms_per_step'])} {_span(p['interval_ms'])}"),
                (f"  on {tgt['gpu']}: ms/step, interval", f"{fmt(tgt['ms_per_step'])} {_span(tgt['interval_ms'])}")]
    return rows


def _attribution_rows(p: dict[str, Any]) -> list[tuple[str, Any]]:
    """With --target-gpu, per phase: what it adds to the target's step and how much its kernels grew."""
    tgt = p.get("target") or {}
    return [(f"  {tgt['gpu']} - source, {r['phase'].removeprefix('golfprof/step/')} ms",
             f"{r['own_ms']:+.2f} (kernels {r['grown_ms']:+.2f})") for r in tgt.get("by_phase", [])]


def print_prediction(s: dict[str, Any]) -> None:
    """One simulated run: the measured step of the rank played beside the predicted figures, labelled so."""
    p = s["prediction"]
    title = (f"PREDICTED {s['variant']} · {s['preset']} · world {p['world_size']} ({p['nodes']} node(s)) · "
             f"ranks played {p['simulated_ranks']} on {s['device']} · {p['comm_model']['name']}")
    rows = [("measured ms/step of the rank played", s.get("ms_per_step")), ("predicted ms/step", p["ms_per_step"]),
            ("predicted optimizer ms", p["optimizer_ms"]), ("predicted comm ms", p["comm_ms"]),
            ("predicted exposed comm ms", p["exposed_comm_ms"]), ("predicted overlap %", p["comm_comp_overlap_pct"])]
    rows[2:2] = _interval_rows(p) + _attribution_rows(p)
    rows += [(f"  {b['line']} ms", b["ms"]) for b in p.get("breakdown", []) if b["ms"]]
    console.print(_metric_table(title, [(k, v if isinstance(v, str) else fmt(v)) for k, v in rows]))
    if (p.get("anchor") or {}).get("warning"):
        print(f"warning: {p['anchor']['warning']}", file=sys.stderr)
    elif (p.get("anchor") or {}).get("note"):
        print(f"note: {p['anchor']['note']}", file=sys.stderr)
    console.print(f"run directory: {s['run_dir']} (prediction: simulated/predicted.json, simulated/trace/)",
                  highlight=False)


def print_frame(title: str, frame: Any) -> None:
    """A small frame of text and numbers (the predicted comparison): text left, numbers right."""
    t = Table(title=title)
    for col in frame.columns:
        t.add_column(col, justify="left" if col in ("variant", "line") else "right")
    for row in frame.itertuples(index=False):
        t.add_row(*(v if isinstance(v, str) else fmt(v) for v in row))
    console.print(t)


def _verdict(row: dict[str, Any], baseline: str) -> str:
    """Only the baseline's own rows say "(baseline)"; a variant left without one to compare with says why."""
    if "verdict" in row:
        return row["verdict"]
    if row["variant"] == baseline:
        return "(baseline)"
    return "(no complete runs)" if not row["runs"] else "(not compared: no baseline runs)"


def _comparison_cells(row: dict[str, Any], baseline: str) -> list[str]:
    compared = "diff" in row
    d = f"{fmt(row['diff'], 3)} [{fmt(row['diff_lo'], 3)}, {fmt(row['diff_hi'], 3)}]" if compared else ""
    return [row["variant"], row["metric"], str(row["runs"]),
            f"{fmt(row['value'], 3)} [{fmt(row['ci_lo'], 3)}, {fmt(row['ci_hi'], 3)}]", d,
            fmt(row.get("diff_pct"), 1) if compared else "", fmt(row.get("p_value"), 3) if compared else "",
            _verdict(row, baseline)]


def print_comparison(result: dict[str, Any]) -> None:
    """A matrix's comparison (``results.comparison``): the headline metrics of every variant vs the baseline."""
    from golfprof.results.comparison import TABLE_METRICS

    t = Table(title=f"variants vs baseline {result['baseline']} (95% CI)")
    for col in ("variant", "metric", "runs", "value [CI]", "Δ vs baseline [CI]", "Δ %", "p", "verdict"):
        t.add_column(col, justify="right" if col not in ("variant", "metric", "verdict") else "left")
    for row in result["rows"]:
        if row["metric"] in TABLE_METRICS:
            t.add_row(*_comparison_cells(row, result["baseline"]))
    console.print(t)
    console.print(result["note"], highlight=False)
    if not any(r["runs"] for r in result["rows"] if r["variant"] == result["baseline"]):
        console.print(f"baseline {result['baseline']}: no run completed, so no variant is compared with it",
                      highlight=False)
    for name, error in result["failed"].items():
        console.print(f"failed: {name}: {error}", highlight=False)
    from golfprof.results.health import check_lines

    for line in check_lines(result):  # A/A agreement of each repeated variant, runs whose GPU throttled
        console.print(line, highlight=False)


def _sweep_row(mdir: Any, key: str, ok: list[str]) -> list[str]:
    """One tokens/step setting: its micro-batching and the medians over its finished runs."""
    done = [mdir.run_named(n).read_summary() for n in ok]
    if not done:
        return [key, "—", "0", "failed", "—", "—"]
    train = mdir.run_named(ok[0]).read_config()["train"]
    micro = train["micro_batch_seqs"]
    accum = train["tokens_per_step"] // train["seq_len"] // done[0]["world_size"] // micro

    def med(k: str) -> float | None:
        values = [d[k] for d in done if d.get(k) is not None]
        return statistics.median(values) if values else None

    return [f"{done[0]['tokens_per_step']:,}", f"{micro} × {accum}", str(len(done)), fmt(med("ms_per_step")),
            fmt(med("tokens_per_s"), 0), fmt(med("mfu_pct"), 1)]


def print_sweep(matrix_dir: Path, state: dict[str, Any]) -> None:
    """ms/step and tokens/s per tokens/step setting: where one GPU saturates."""
    from golfprof.profiler.rundir import MatrixDir

    mdir = MatrixDir(matrix_dir)
    t = Table(title="tokens-per-step sweep")
    for col in ("tokens/step", "micro-batch × accum", "runs", "ms/step", "tokens/s", "MFU %"):
        t.add_column(col, justify="right")
    for key in state["variants"]:
        ok = [n for n, i in sorted(state["runs"].items()) if i["variant"] == key and i["status"] == "ok"]
        t.add_row(*_sweep_row(mdir, key, ok))
    console.print(t)


def print_cost_table(doc: dict[str, Any], nproc: int, ops: list[str]) -> None:
    """A measured collective cost table (``bench comm``): median µs per message size and op."""
    t = Table(title=f"{doc['name']} · world {nproc} · median µs")
    t.add_column("bytes", justify="right")
    ops = [o for o in ops if o in doc["measured"]]
    for o in ops:
        t.add_column(o, justify="right")
    sizes = [b for b, _ in doc["measured"][ops[0]][str(nproc)]]
    for i, b in enumerate(sizes):
        t.add_row(f"{b:,}", *(fmt(doc["measured"][o][str(nproc)][i][1], 1) for o in ops))
    console.print(t)


def print_variants(rows: list[tuple[str, ...]], baseline: str) -> None:
    """``golfprof variants``: each named variant and what it changes."""
    t = Table(title=f"golfprof variants (baseline: {baseline})")
    for col in ("variant", "changes", "description"):
        t.add_column(col)
    for row in rows:
        t.add_row(*row)
    console.print(t)
