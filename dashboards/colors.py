"""One colour per phase, the same in every chart, chosen so related phases read as families.

Forward and backward dominate a step, so they get the strongest contrast; the Muon bank phases
share a hue per kind (orthogonalize green, wait teal, all-gather purple) with one shade per bank,
so a reader can follow the Parallel Muon pipeline bank by bank.
"""

from __future__ import annotations

import re

from golfprof.profiler import names

from .diffs import APPEARED, CHANGED, VANISHED
from .timeline import COLLECTIVE_RANGE_RE, EXPOSED, NO_PHASE

HIDDEN = "hidden under compute"
FIXED = {
    names.STEP: "#c7c2bd", names.DATA: "#8c8c8c", names.FORWARD: "#4c78a8", names.BACKWARD: "#f58518",
    names.GRAD_CLIP: "#b279a2", names.OPTIMIZER: "#54a24b", names.ADAM: "#9dd18b", names.MUON: "#2f7d32",
    names.UPDATE_APPLY: "#9c755f", names.EMA: "#eeca3b", names.RS_LAUNCH: "#d67195",
    names.REPLICATED_ALLREDUCE: "#ff9da6", names.PLANTED_DELAY: "#000000", NO_PHASE: "#e0e0e0",
    EXPOSED: "#d62728", HIDDEN: "#8cd17d", "outside phases": "#d9d9d9",
}
# Diff bars: GPU and CPU deltas apart at a glance; new kernel work red, removed green, resized blue.
DIFF = {"gpu_busy_ms": "#1f77b4", "cpu_ms": "#b8a1d9", APPEARED: "#e45756", VANISHED: "#54a24b", CHANGED: "#4c78a8"}
_BANK_RE = re.compile(r"/muon/(?P<bank>[^/]+)/(?P<kind>wait|orthogonalize|all_gather)$")
_SHADES = {
    "orthogonalize": ["#1b7837", "#5aae61", "#a6dba0", "#2d6a4f", "#74c69d", "#40916c"],
    "wait": ["#0b6e80", "#1f9eb5", "#6fc2d4", "#08519c", "#4292c6", "#9ecae1"],
    "all_gather": ["#542788", "#8073ac", "#b2abd2", "#6a3d9a", "#9e9ac8", "#3f007d"],
}
_OTHER = ["#17becf", "#bcbd22", "#7f7f7f", "#8c564b", "#e377c2", "#9467bd", "#1f77b4", "#ff7f0e"]
_COLLECTIVES = ["#8c564b", "#a0522d", "#6b4226", "#c49c94"]


def palette(phases: list[str]) -> dict[str, str]:
    """Colour per phase name; banks take shades in order of first appearance."""
    out: dict[str, str] = {}
    banks: list[str] = []
    other = coll = 0
    for p in phases:
        if p in out:
            continue
        m = _BANK_RE.search(p)
        if p in FIXED:
            out[p] = FIXED[p]
        elif m:
            if m["bank"] not in banks:
                banks.append(m["bank"])
            shades = _SHADES[m["kind"]]
            out[p] = shades[banks.index(m["bank"]) % len(shades)]
        elif COLLECTIVE_RANGE_RE.match(p):
            out[p] = _COLLECTIVES[coll % len(_COLLECTIVES)]
            coll += 1
        else:
            out[p] = _OTHER[other % len(_OTHER)]
            other += 1
    return out
