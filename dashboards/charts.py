"""Plotly figures for the four dashboard charts, from the frames of ``timeline`` and ``data``.

Every figure puts its numbers in the hover text and units in its title and axes; the tables
beside them (``tables``) carry the same numbers for reading.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from golfprof.profiler import names

from .colors import DIFF, EXPOSED, FIXED, HIDDEN
from .data import OUTSIDE, Comparison, short_phase
from .diffs import APPEARED, CHANGED, VANISHED
from .timeline import RankTimeline

FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12)
_MAX_LABEL = 90
MAX_BARS = 25  # rows of a diff chart; its table lists every row
_KERNEL_LABEL = 60  # kernel names on a diff chart's axis; the hover and the table have them whole


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, xanchor="left"), height=height, font=FONT,
                      template="plotly_white", margin=dict(l=10, r=10, t=70, b=40),
                      hoverlabel=dict(font_size=12), legend=dict(traceorder="normal"))
    return fig


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "…"


def _ci(v: float, lo: float, hi: float, unit: str = "ms") -> str:
    if math.isnan(lo) or math.isnan(hi):
        return f"{v:.3f} {unit}"
    return f"{v:.3f} {unit} (95% CI {lo:.3f}–{hi:.3f})"


def _segment_text(s: pd.DataFrame) -> list[str]:
    out = []
    for lane, kind, phase, step, a, b, busy, items, label in s[
        ["lane", "kind", "phase", "step", "start_ms", "end_ms", "busy_ms", "items", "label"]
    ].itertuples(index=False):
        head = f"<b>{short_phase(phase)}</b><br>{lane} · step {step}<br>{a:.3f} → {b:.3f} ms ({b - a:.3f} ms)"
        if kind == "compute":
            detail = f"{int(items)} kernel(s), busy {busy:.3f} ms<br>most time in: {_clip(str(label))}"
        elif kind == "comm":
            detail = f"collective: {_clip(str(label))}, {busy:.3f} ms"
        elif kind == "exposed":
            detail = "communication with no compute kernel running"
        else:
            detail = "CPU: innermost open phase"
        out.append(f"{head}<br>{detail}")
    return out


def _zoom_buttons(seg: pd.DataFrame, whole: list[float]) -> list[dict]:
    """'whole step' and 'optimizer': the optimizer is a few ms of a long step, too thin to see unzoomed."""
    opt = seg[seg["phase"].astype(str).str.startswith(names.OPTIMIZER)]
    if opt.empty:
        return []
    lo, hi = float(opt["start_ms"].min()), float(opt["end_ms"].max())
    pad = max((hi - lo) * 0.05, (whole[1] - whole[0]) * 1e-4)
    return [dict(type="buttons", direction="left", x=1.02, xanchor="left", y=1.0, yanchor="bottom", pad=dict(b=4),
                 buttons=[dict(label="whole step", method="relayout", args=[{"xaxis.range": whole}]),
                          dict(label="zoom: optimizer", method="relayout",
                               args=[{"xaxis.range": [max(lo - pad, 0), hi + pad]}])])]


def timeline_figure(timelines: list[RankTimeline], colors: dict[str, str], title: str) -> go.Figure:
    """Lanes per rank (CPU threads, GPU streams, exposed comm); one bar trace per phase for the legend."""
    seg = pd.concat([t.segments for t in timelines], ignore_index=True)
    lanes = list(pd.unique(seg["lane"]))
    fig = go.Figure()
    shown = [p for p in colors if p in set(seg["phase"])]
    for phase in shown:
        s = seg[seg["phase"] == phase]
        fig.add_trace(go.Bar(
            y=s["lane"], x=s["end_ms"] - s["start_ms"], base=s["start_ms"], orientation="h",
            name=short_phase(phase), marker=dict(color=colors[phase], line=dict(width=0)),
            hovertext=_segment_text(s), hoverinfo="text",
        ))
    end = max(t.end_ms for t in timelines)
    start = min(0.0, float(seg["start_ms"].min()))  # another rank may start its step before the first one
    whole = [start, end + (end - start) * 0.01]
    fig.update_layout(barmode="overlay", bargap=0.3, legend=dict(title="phase"), updatemenus=_zoom_buttons(seg, whole))
    fig.update_yaxes(categoryorder="array", categoryarray=lanes, autorange="reversed", title=None)
    fig.update_xaxes(title=f"time since rank {timelines[0].rank}'s step start (ms)", range=whole, showgrid=True)
    return _layout(fig, title, max(360, 130 + 34 * len(lanes), 150 + 22 * len(shown)))


def overlap_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """Per phase: each rank's communication ms per step, hidden under compute (bottom) or exposed (top)."""
    phases = list(pd.unique(frame["phase"]))
    xs = [short_phase(p) for p in phases]
    fig = go.Figure()
    for i, (rank, r) in enumerate(frame.groupby("rank", sort=True)):
        r = r.set_index("phase").reindex(phases)
        hidden, exposed = r["hidden_ms"].fillna(0).to_numpy(), r["exposed_ms"].fillna(0).to_numpy()
        text = [f"<b>{x}</b> · rank {rank}<br>communication {c:.3f} ms/step ({k:.0f} kernels)<br>"
                f"hidden {h:.3f} ms · exposed {e:.3f} ms ({pct:.1f}%)"
                for x, c, k, h, e, pct in zip(xs, r["comm_ms"].fillna(0), r["kernels"].fillna(0), hidden, exposed,
                                              r["exposed_pct"].fillna(0))]
        for name, y, base, color in ((HIDDEN, hidden, np.zeros(len(xs)), FIXED[HIDDEN]),
                                     (EXPOSED, exposed, hidden, FIXED[EXPOSED])):
            fig.add_trace(go.Bar(
                x=xs, y=y, base=base, offsetgroup=str(rank), name=name, legendgroup=name, showlegend=i == 0,
                marker=dict(color=color, line=dict(color="#444", width=0.5)), hovertext=text, hoverinfo="text",
                text=[f"r{rank}"] * len(xs) if name == EXPOSED else None, textposition="outside",
            ))
    fig.update_layout(barmode="group", bargap=0.25, bargroupgap=0.08)
    fig.update_yaxes(title="communication per profiled step (ms)", rangemode="tozero")
    fig.update_xaxes(title="phase that launched the collectives (all phases = union)")
    return _layout(fig, title, 460)


def comparison_figure(cmp: Comparison, colors: dict[str, str]) -> go.Figure:
    """Stacked ms/step per phase with CI whiskers on the total, and the optimizer on its own scale."""
    f = cmp.frame
    xs = [f"<b>{v}</b><br>(baseline)" if b else v for v, b in zip(f["variant"], f["baseline"])]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.68, 0.32], horizontal_spacing=0.08,
                        subplot_titles=("ms per step, stacked by phase (median of steps; whiskers: 95% CI)",
                                        "optimizer ms per step (95% CI)"))
    for phase in cmp.stack:
        y = f[phase].fillna(0).to_numpy(float)
        share = [100 * v / t if t else 0 for v, t in zip(y, f["ms_per_step"].fillna(0))]
        fig.add_trace(go.Bar(
            x=xs, y=y, name=short_phase(phase), marker=dict(color=colors.get(phase, FIXED[OUTSIDE])),
            hovertext=[f"<b>{v}</b><br>{short_phase(phase)}: {m:.3f} ms/step ({s:.1f}% of the step)"
                       for v, m, s in zip(f["variant"], y, share)], hoverinfo="text",
        ), row=1, col=1)
    total = f["ms_per_step"].to_numpy(float)
    fig.add_trace(go.Scatter(
        x=xs, y=total, mode="markers", name="ms/step (95% CI)",
        marker=dict(color="#222", symbol="line-ew-open", size=18),
        error_y=dict(type="data", array=np.nan_to_num(f["ms_hi"] - total), arrayminus=np.nan_to_num(total - f["ms_lo"]),
                     color="#222", thickness=1.5, width=8),
        hovertext=[f"<b>{v}</b><br>{_ci(t, lo, hi, 'ms/step')}<br>{n} run(s); {d}"
                   for v, t, lo, hi, n, d in zip(f["variant"], total, f["ms_lo"], f["ms_hi"], f["runs"], _vs(f, "ms"))],
        hoverinfo="text",
    ), row=1, col=1)
    opt = f["optimizer_ms"].to_numpy(float)
    fig.add_trace(go.Bar(
        x=xs, y=np.nan_to_num(opt), name="optimizer ms", showlegend=False,
        marker=dict(color=[colors.get("golfprof/step/optimizer", FIXED["golfprof/step/optimizer"])] * len(xs),
                    line=dict(color=["#000" if b else "rgba(0,0,0,0)" for b in f["baseline"]], width=2)),
        error_y=dict(type="data", array=np.nan_to_num(f["opt_hi"] - opt), arrayminus=np.nan_to_num(opt - f["opt_lo"]),
                     color="#222", thickness=1.5, width=6),
        text=[f"{o:.2f} ms" for o in opt], textposition="outside", cliponaxis=False,
        hovertext=[f"<b>{v}</b><br>optimizer {_ci(o, lo, hi, 'ms/step')}<br>{n} run(s); {d}"
                   for v, o, lo, hi, n, d in zip(f["variant"], opt, f["opt_lo"], f["opt_hi"], f["runs"],
                                                 _vs(f, "opt"))],
        hoverinfo="text",
    ), row=1, col=2)
    base = f[f["baseline"]]
    if not base.empty:
        for col, key in ((1, "ms_per_step"), (2, "optimizer_ms")):
            v = float(base[key].iloc[0])
            fig.add_trace(go.Scatter(
                x=xs, y=[v] * len(xs), mode="lines", name=f"baseline ({base['variant'].iloc[0]})",
                legendgroup="baseline", showlegend=col == 1, line=dict(color="#222", dash="dot", width=1),
                hoverinfo="skip",
            ), row=1, col=col)
    fig.update_layout(barmode="stack", legend=dict(title="phase"))
    fig.update_yaxes(title="ms per step", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title="optimizer ms per step", rangemode="tozero", row=1, col=2)
    return _layout(fig, "Variant comparison: where each step's milliseconds go", 520)


def _vs(f: pd.DataFrame, key: str) -> list[str]:
    out = []
    for b, d, v in zip(f["baseline"], f[f"{key}_diff_pct"], f[f"{key}_verdict"]):
        out.append("the baseline" if b else (f"{d:+.1f}% vs baseline, {v}" if not math.isnan(d) else "no baseline"))
    return out


def trend_figure(frame: pd.DataFrame, bound_pct: float) -> go.Figure:
    """Each metric over the run series, baseline and regression threshold drawn, regressions in red."""
    titles = {"ms_per_step": "ms per step", "optimizer_ms": "optimizer ms per step"}
    metrics = [m for m in titles if m in set(frame["metric"])]
    fig = make_subplots(rows=len(metrics), cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=[f"{titles[m]} (median of steps; whiskers: 95% CI)" for m in metrics])
    for row, metric in enumerate(metrics, start=1):
        d = frame[frame["metric"] == metric].sort_values("order")
        xs = [f"{r}<br>{g}" if g else r for r, g in zip(d["run"], d["git"])]
        v = d["value"].to_numpy(float)
        above = v > d["threshold"].to_numpy(float)
        color = np.where(d["regressed"], FIXED[EXPOSED], np.where(above, "#ff9f1c", "#1f77b4"))
        status = np.where(d["regressed"], "REGRESSION", np.where(above, "above the threshold, not significant", "ok"))
        fig.add_trace(go.Scatter(
            x=xs, y=v, mode="lines+markers", name=titles[metric], showlegend=False,
            line=dict(color="#1f77b4", width=1.5), marker=dict(color=color, size=10, line=dict(color="#222", width=1)),
            error_y=dict(type="data", array=np.nan_to_num(d["ci_hi"] - v), arrayminus=np.nan_to_num(v - d["ci_lo"]),
                         color="#555", thickness=1, width=5),
            hovertext=[f"<b>{r}</b> ({var})<br>started {s}{' · ' + g if g else ''}<br>{titles[metric]}: "
                       f"{_ci(val, lo, hi)}<br>{c:+.2f}% vs baseline: {st}<br>{w}"
                       for r, var, s, g, val, lo, hi, c, st, w in zip(d["run"], d["variant"], d["started"], d["git"], v,
                                                                     d["ci_lo"], d["ci_hi"], d["change_pct"], status,
                                                                     d["why"])],
            hoverinfo="text",
        ), row=row, col=1)
        base, limit = float(d["baseline"].iloc[0]), float(d["threshold"].iloc[0])
        fig.add_hline(y=base, line=dict(color="#555", dash="dot", width=1), row=row, col=1,
                      annotation_text=f"baseline {base:.3f} ms", annotation_position="bottom right",
                      annotation_font_size=10)
        fig.add_hline(y=limit, line=dict(color=FIXED[EXPOSED], dash="dash", width=1.5), row=row, col=1,
                      annotation_text=f"regression threshold +{bound_pct:g}% = {limit:.3f} ms",
                      annotation_position="top right", annotation_font_size=10, annotation_font_color=FIXED[EXPOSED])
        fig.update_yaxes(title="ms", row=row, col=1)
    fig.update_xaxes(title="run (oldest first)", row=len(metrics), col=1, tickangle=-20)
    return _layout(fig, f"Trend: ms/step and optimizer ms across runs (threshold: +{bound_pct:g}% over the baseline)",
                   300 + 260 * len(metrics))


def _ms(v: float, sign: str = "") -> str:
    """A CPU-only side has no GPU figures (NaN): a dash, not 'nan'."""
    return "–" if math.isnan(v) else f"{v:{sign}.3f}"


def _row_label(name: str, rank: int, ranks: list[int]) -> str:
    return f"r{rank} · {name}" if len(ranks) > 1 else name


def _diff_axes(fig: go.Figure, labels: list[str], x_title: str) -> None:
    """Rows by position (two kernels may clip to the same label), largest change on top, zero line drawn."""
    ys = list(range(len(labels)))
    fig.update_yaxes(tickvals=ys, ticktext=labels, autorange="reversed", title=None, showgrid=False)
    fig.update_xaxes(title=x_title, zeroline=True, zerolinecolor="#444", zerolinewidth=1, showgrid=True)


def diff_phase_figure(frame: pd.DataFrame, ranks: list[int], title: str) -> go.Figure:
    """Per moved phase (largest |Δ| first): Δ GPU busy and Δ CPU ms per step, B − A."""
    f = frame.head(MAX_BARS).reset_index(drop=True)
    names = [short_phase(p) for p in f["phase"]]
    text = [f"<b>{n}</b> · rank {r}<br>GPU busy {_ms(ga)} → {_ms(gb)} ms/step (Δ {_ms(gd, '+')})<br>"
            f"CPU {_ms(ca)} → {_ms(cb)} ms/step (Δ {_ms(cd, '+')})<br>exposed communication Δ {_ms(ed, '+')} ms/step"
            for n, r, ga, gb, gd, ca, cb, cd, ed in zip(
                names, f["rank"], f["gpu_busy_ms_a"], f["gpu_busy_ms_b"], f["gpu_busy_ms_delta"], f["cpu_ms_a"],
                f["cpu_ms_b"], f["cpu_ms_delta"], f["exposed_comm_ms_delta"])]
    fig = go.Figure()
    for key, name in (("gpu_busy_ms", "Δ GPU busy"), ("cpu_ms", "Δ CPU")):
        fig.add_trace(go.Bar(y=f.index, x=f[f"{key}_delta"].fillna(0.0), orientation="h", name=f"{name} (ms/step)",
                             marker=dict(color=DIFF[key]), hovertext=text, hoverinfo="text"))
    fig.update_layout(barmode="group", bargap=0.25, legend=dict(title="B − A"))
    _diff_axes(fig, [_row_label(n, r, ranks) for n, r in zip(names, f["rank"])],
               "Δ ms per profiled step, B − A (GPU busy: union of the phase's kernels; CPU: the phase's range)")
    return _layout(fig, title, max(320, 160 + 34 * len(f)))


def diff_kernel_figure(frame: pd.DataFrame, ranks: list[int], title: str) -> go.Figure:
    """Kernel groups with the largest |Δ ms per step|, one bar each, coloured by appeared, vanished or changed."""
    f = frame.head(MAX_BARS).reset_index(drop=True)
    fig = go.Figure()
    for kind in (APPEARED, VANISHED, CHANGED):
        s = f[f["kind"] == kind]
        if s.empty:
            continue
        text = [f"<b>{_clip(k)}</b> · rank {r}<br>{kind}<br>count {na:g} → {nb:g} per step (Δ {nd:+g})<br>"
                f"{ma:.3f} → {mb:.3f} ms/step (Δ {md:+.3f})"
                for k, r, na, nb, nd, ma, mb, md in zip(s["kernel"], s["rank"], s["count_per_step_a"],
                                                         s["count_per_step_b"], s["count_delta"], s["ms_per_step_a"],
                                                         s["ms_per_step_b"], s["ms_delta"])]
        fig.add_trace(go.Bar(y=s.index, x=s["ms_delta"], orientation="h", name=kind,
                             marker=dict(color=DIFF[kind]), hovertext=text, hoverinfo="text"))
    fig.update_layout(barmode="overlay", bargap=0.3, legend=dict(title="kernel group"))
    labels = [k if len(k) <= _KERNEL_LABEL else k[: _KERNEL_LABEL - 1] + "…" for k in f["kernel"]]
    _diff_axes(fig, [_row_label(k, r, ranks) for k, r in zip(labels, f["rank"])],
               "Δ GPU time per profiled step, B − A (ms; communication kernels excluded)")
    return _layout(fig, title, max(320, 160 + 24 * len(f)))
