"""What the terminal tables show at 80 columns: short distinguishable phase names, sizes in binary
units, which ranks speak for a run, and which CPU annotations --phases could select (pure)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from . import events

PHASE_WIDTH = 24  # characters of a phase name at 80 columns (before its indent)
ELLIPSIS = "…"
_SEGMENT = re.compile(r"^([^\w\s]+\s*|[^:/]+[:/])")  # '## ' of '## forward ##', 'phase:' of 'phase:fwd'
_META = re.compile(r"([.^$*+?{}\[\]\\|()])")


def _escape(s: str) -> str:
    """re.escape for a shell argument: only the characters a regex reads specially ('#', ' ' are not)."""
    return _META.sub(r"\\\1", s)


def fmt_bytes(n: float | None) -> str:
    """1536 -> '1.5 KiB', 15204352 -> '14.5 MiB'; '–' for unknown."""
    if n is None or n != n:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_ms(v: float | None) -> str:
    """Milliseconds in at most five characters: 0.05, 3.20, 27.4, 913."""
    if v is None or v != v:
        return "–"
    a = abs(v)
    return format(v, ".0f" if a >= 100 else ".1f" if a >= 10 else ".2f")


def _middle_cut(s: str, width: int) -> str:
    """Keep both ends of a name (its root and its leaf tell phases apart), cut the middle."""
    if len(s) <= width:
        return s
    head = (width - 1) // 2
    return s[:head] + ELLIPSIS + s[len(s) - (width - 1 - head):]


def short_names(names: list[str], parents: list[str | None], width: int = PHASE_WIDTH) -> dict[str, str]:
    """Phase name -> how the table shows it: relative to its parent (the indent shows the parent),
    cut in the middle to ``width``, and widened where two would read the same."""
    rel = {}
    for n, p in zip(names, parents):
        rel[n] = n[len(p) + 1:] if isinstance(p, str) and n.startswith(p + "/") else n
    out = {n: _middle_cut(r, width) for n, r in rel.items()}
    w = width
    while len(set(out.values())) < len(out) and w < max(len(r) for r in rel.values()):
        w += 4
        seen = Counter(out.values())
        out = {n: _middle_cut(rel[n], w) if seen[s] > 1 else s for n, s in out.items()}
    return out


def shown_ranks(ranks: list[int], skew: pd.DataFrame, step_ms: dict[int, float | None]) -> list[int]:
    """The ranks whose tables the terminal shows: all of two, else the late one and the earliest one.

    The late rank is the one the others wait for (least waiting in matched collectives), the earliest
    the one that waits most; without matched collectives, the slowest and the fastest median step.
    """
    if len(ranks) <= 2:
        return sorted(ranks)
    if not skew.empty and (skew["wait_ms_per_step"] > 0).any():
        wait = skew.groupby("rank")["wait_ms_per_step"].sum().reindex(ranks).fillna(0.0)
        late, early = int(wait.idxmin()), int(wait.idxmax())
    else:
        steps = pd.Series({r: step_ms.get(r) if step_ms.get(r) is not None else np.nan for r in ranks}).fillna(0.0)
        late, early = int(steps.idxmax()), int(steps.idxmin())
    return [late] if late == early else [late, early]


def suggest_phases(ev: pd.DataFrame, st: pd.DataFrame) -> tuple[list[str], str] | None:
    """(user annotations of the profiled steps, a --phases regex selecting them), None when there are none.

    For a trace whose phase pattern matched nothing: a foreign trainer names its record_function
    ranges its own way (``phase:fwd``, ``## forward ##``), so name them and the option that picks them.
    """
    m = events.cat_mask(ev, ("user_annotation",)) & ~events.name_mask(ev["name"], events.STEP_RE)
    if not st.empty:
        m &= events.step_of(st, ev["ts"].to_numpy()) >= 0
    names = list(dict.fromkeys(ev.loc[m, "name"].astype(str)))
    if not names:
        return None
    prefixes = Counter(mt.group(1) for n in names if (mt := _SEGMENT.match(n)))
    prefix, count = prefixes.most_common(1)[0] if prefixes else ("", 0)
    if count >= max(2, len(names) // 2):
        regex = "^" + _escape(prefix)
    else:
        regex = "^(" + "|".join(_escape(n) for n in names[:6]) + ")$"
    return names, regex
