"""Assemble one self-contained HTML page: plotly.js embedded once, every chart with its table.

No ``<script src>`` and no CDN: the file opens offline, e.g. from a CI artifact. A chart with
nothing to draw is replaced by a sentence saying why (``class="nodata"``), so an empty plot on
the page is always a bug; ``data-chart`` names what each figure is for the browser test.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
_OPEN_ROWS = 20  # longer tables start folded

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 24px auto; max-width: 1500px;
       padding: 0 16px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 36px; border-bottom: 1px solid #ddd; }
.meta, .intro, .note { color: #555; font-size: 13px; } .note { margin: 2px 0; }
.nodata { background: #f6f6f6; border-left: 4px solid #bbb; padding: 10px 14px; color: #444; }
figure.chart { margin: 12px 0 28px 0; }
details { margin-top: 6px; } summary { cursor: pointer; color: #333; font-size: 13px; }
table.numbers { border-collapse: collapse; font-size: 12px; margin-top: 6px; }
table.numbers th, table.numbers td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
table.numbers th { background: #f3f3f3; } \
table.numbers td:first-child, table.numbers th:first-child { text-align: left; }
nav a { margin-right: 14px; font-size: 13px; } .scroll { overflow-x: auto; }
"""


@dataclass
class Chart:
    id: str
    figure: go.Figure
    table: pd.DataFrame
    caption: str = ""


@dataclass
class Section:
    kind: str  # timeline, overlap, comparison, trend
    title: str
    intro: str
    charts: list[Chart] = field(default_factory=list)
    empty: str | None = None  # why nothing is drawn, when charts is empty
    notes: list[str] = field(default_factory=list)


def _number(v: object) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:,.3f}"
    return str(v)


def table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, classes="numbers", border=0, na_rep="–", escape=True,
                         formatters={c: _number for c in frame.columns if frame[c].dtype.kind == "f"})


def _chart_html(kind: str, chart: Chart) -> str:
    plot = chart.figure.to_html(full_html=False, include_plotlyjs=False, div_id=chart.id, config=PLOTLY_CONFIG)
    rows = len(chart.table)
    fold = "" if rows > _OPEN_ROWS else " open"
    caption = f'<p class="note">{html.escape(chart.caption)}</p>' if chart.caption else ""
    return (f'<figure class="chart" data-chart="{kind}" data-plot="{html.escape(chart.id)}">{plot}{caption}'
            f"<details{fold}><summary>Table: the same numbers ({rows} rows)</summary>"
            f'<div class="scroll">{table_html(chart.table)}</div></details></figure>')


def _section_html(s: Section) -> str:
    parts = [f'<section id="section-{s.kind}"><h2>{html.escape(s.title)}</h2>'
             f'<p class="intro">{html.escape(s.intro)}</p>']
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in s.notes]
    if s.charts:
        parts += [_chart_html(s.kind, c) for c in s.charts]
    else:
        parts.append(f'<p class="nodata" data-chart="{s.kind}">No chart: {html.escape(s.empty or "no data")}</p>')
    parts.append("</section>")
    return "".join(parts)


def render(title: str, meta: list[str], sections: list[Section]) -> str:
    """The whole page as text; plotly.js is inlined in the head, before any figure's script."""
    nav = "".join(f'<a href="#section-{s.kind}">{html.escape(s.title)}</a>' for s in sections)
    body = "".join(_section_html(s) for s in sections)
    meta_html = "".join(f'<p class="meta">{html.escape(m)}</p>' for m in meta)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{CSS}</style>"
        "<script type=\"text/javascript\">window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"
        f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head>"
        f"<body><h1>{html.escape(title)}</h1>{meta_html}<nav>{nav}</nav>{body}</body></html>\n"
    )
