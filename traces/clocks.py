"""Rank clocks: one clock for every rank of a run, and a check that the ranks' clocks agree.

Kineto writes ``ts`` relative to the header's ``baseTimeNanoseconds`` when it has one (absolute µs
otherwise), so two ranks' times compare only once each file's base is added. A collective ends on
all its ranks together (the last one to arrive releases the others, and they finish the transfer
side by side), so on one clock the ends of the same collective agree within tens of µs. A rank whose
ends are off from the lowest rank's by a steady amount is on a clock that is off by that amount:
``offsets`` measures it over the collectives matched across ranks (``comm.match_collectives``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .comm import match_collectives

OFFSET_NOTE_US = 1000.0  # a clock further off than this is reported (collective ends agree within ~0.1 ms)
MIN_MATCHED = 3  # collectives needed before an offset is trusted


def base_us(meta: dict[str, Any]) -> float:
    """The trace's time base in µs: ``baseTimeNanoseconds`` / 1000, 0 when the header has none."""
    base = meta.get("baseTimeNanoseconds")
    return float(base) / 1e3 if isinstance(base, (int, float)) and not isinstance(base, bool) else 0.0


def offsets(seqs: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Per rank: how far its clock reads ahead of the lowest rank's (µs, median over matched collectives).

    Columns rank, offset_us, spread_us (interquartile range of the per-collective differences: small
    when the offset is a clock's, large when it is noise), matched. The lowest rank has offset 0;
    a rank sharing fewer than MIN_MATCHED collectives with it gets NaN.
    """
    cols = ["rank", "offset_us", "spread_us", "matched"]
    (end, _) = match_collectives(seqs, ("end",))
    if end.empty:
        return pd.DataFrame(columns=cols)
    ref = min(end.columns)
    rows = []
    for r in end.columns:
        d = (end[r] - end[ref]).dropna().to_numpy()
        ok = len(d) >= MIN_MATCHED
        q1, q3 = np.percentile(d, [25, 75]) if ok else (np.nan, np.nan)
        rows.append({"rank": int(r), "offset_us": float(np.median(d)) if ok else np.nan,
                     "spread_us": float(q3 - q1) if ok else np.nan, "matched": int(len(d))})
    return pd.DataFrame(rows, columns=cols)


def _span(us: float) -> str:
    return f"{us / 1e6:.3f} s" if abs(us) >= 1e6 else f"{us / 1e3:.1f} ms"


def offset_notes(table: pd.DataFrame) -> dict[int, str]:
    """rank -> one line for each rank whose clock is off from the lowest rank's by over OFFSET_NOTE_US."""
    if table.empty:
        return {}
    ref = int(table["rank"].min())
    out = {}
    for row in table.itertuples():
        if row.rank == ref or not np.isfinite(row.offset_us):
            continue
        if abs(row.offset_us) <= max(OFFSET_NOTE_US, row.spread_us):  # small, or noise rather than a clock
            continue
        way = "ahead of" if row.offset_us > 0 else "behind"
        out[int(row.rank)] = (f"clock reads {_span(abs(row.offset_us))} {way} rank {ref}'s (median over {row.matched} "
                              f"collectives' ends, spread {_span(row.spread_us)})")
    return out
