"""The predicted step as a sum of lines, so two schedules' difference reads as a sum of causes.

Lines (ms a step, each beside how it was obtained):

- ``ddp bucket copy in`` / ``ddp bucket copy out``: DDP's reducer copies every gradient into its bucket and
  the reduced bucket back: the buckets' bytes read and written once each way, at the GPU's HBM bandwidth
  (2·B / W each; inside the measured compute, sized from bytes; 0 without a device entry);
- ``ddp hooks``: CPU time inside the comm hook calls, as the played rank measured it;
- ``ddp all-reduce after backward``: the exposed part of DDP's bucket all-reduces (the replay): the bank
  gradients' bucket is ready only as backward ends, so its all-reduce cannot hide behind it;
- ``replicated optimizer``: DDP runs Muon on every bank on every rank; the share beyond this rank's 1/N
  (measured Muon kernel time × (N−1)/N) is work the explicit schedule does not do (0 under
  ``--ddp-muon round_robin``, whose ranks split the orthogonalization and share the updates by an all-reduce, an
  ``other exposed communication``);
- ``other exposed communication``: every other collective's exposed part;
- ``compute``: the rest of the predicted step.

The lines sum to the predicted step by construction; every line but ``compute`` is a cause.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LINES = ("compute", "ddp bucket copy in", "ddp bucket copy out", "ddp hooks", "ddp all-reduce after backward",
         "replicated optimizer", "other exposed communication")


def in_ranges(launch: np.ndarray, ranges: list[tuple[str, float, float]], phase: str) -> np.ndarray:
    """Items launched inside any range named ``phase`` or nested under it by name."""
    m = np.zeros(len(launch), bool)
    for n, a, b in ranges:
        if n == phase or n.startswith(phase + "/"):
            m |= (launch >= a) & (launch < b)
    return m


def lines(ms_per_step: float, colls: pd.DataFrame, world: int, replicated_muon: bool, muon_ms: float,
          hook_ms: float, hbm_bw: float | None) -> list[dict]:
    """The breakdown of one prediction; ``colls`` has source, bytes and exposed_ms per collective of a step;
    ``replicated_muon``: every rank orthogonalizes every matrix (DDP, unless its Muon is dealt out round robin)."""
    ddp = (colls["source"] == "ddp").to_numpy() if len(colls) else np.zeros(0, bool)
    exposed = colls["exposed_ms"].to_numpy(float) if len(colls) else np.zeros(0)
    ddp_bytes = float(colls["bytes"].to_numpy(float)[ddp].sum()) if len(colls) else 0.0
    copy = 2.0 * ddp_bytes / hbm_bw * 1e3 if hbm_bw else 0.0
    copy_how = "modelled: 2 x bucket bytes / HBM bandwidth" if hbm_bw else "not sized: no device entry"
    replicated = muon_ms * (world - 1) / world if replicated_muon else 0.0
    rows = [
        ("ddp bucket copy in", copy, copy_how),
        ("ddp bucket copy out", copy, copy_how),
        ("ddp hooks", hook_ms if ddp.any() else 0.0, "measured: CPU time in the comm hook calls"),
        ("ddp all-reduce after backward", float(exposed[ddp].sum()), "replay: exposed ms of DDP's buckets"),
        ("replicated optimizer", replicated, "measured Muon kernel ms x (N-1)/N"),
        ("other exposed communication", float(exposed[~ddp].sum()), "replay: exposed ms of the other collectives"),
    ]
    rest = ms_per_step - sum(ms for _, ms, _ in rows)
    return [{"line": "compute", "ms": rest, "how": "the rest of the predicted step"}] + \
        [{"line": n, "ms": ms, "how": h} for n, ms, h in rows]


def delta(a: list[dict], b: list[dict]) -> pd.DataFrame:
    """Line by line b − a (ms): the causes of a difference between two predictions."""
    fa, fb = ({r["line"]: r["ms"] for r in x} for x in (a, b))
    return pd.DataFrame([{"line": n, "a_ms": fa.get(n, 0.0), "b_ms": fb.get(n, 0.0),
                          "delta_ms": fb.get(n, 0.0) - fa.get(n, 0.0)} for n in LINES])
