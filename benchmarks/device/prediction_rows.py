"""Rows of benchmarks/results/prediction_vs_records.json from the campaign's predict stage (its $OUT/predict.json).

    python benchmarks/device/prediction_rows.py CALL=PREDICT_JSON [CALL=PREDICT_JSON ...] > rows.json

Each row is one world-8 run as the device predicted it (nothing is recomputed here), with the published figure it
is compared with; then per configuration the mean and range over the calls, the deltas against explicit_banks
with the published deltas, and whether the predicted intervals separate them.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

PUBLISHED = {  # configuration -> (ms/step on 8xH100, where it is published)
    "explicit_banks": (81.87, "PR #399's text (8xH100): 81.87 ms/step for the banked Parallel Muon (trainer_spec.md "
                              "section 2, [S399])"),
    "explicit_banks@emaforeach": (81.87, "as explicit_banks: the record's configuration but golfprof's fused EMA"),
    "ddp_banks": (88.8, "PR #399's text: 'DDP with banks 88.8 ms (+4 ms)' against #315's DDP baseline 84.76 "
                        "(trainer_spec.md sections 2 and 6)"),
    "ddp_whole_graph": (88.8, "as ddp_banks (which graph PR #399's DDP run compiled is not published)"),
    "ddp_round_robin": (84.76, "#315's DDP baseline, 84.76 ms/step over 7,079 steps (trainer_spec.md section 2, [V1])"),
    "explicit_unbanked": (85.73, "PR #399's text: 'non-surgery' batching (keep 66 params, stack them in the "
                                 "optimizer) 85.73 ms"),
    "script": ((83.43, 83.59), "the record's own logs (8xH100): step_avg 83.43-83.59 ms over 600 s "
                               "(record_scripts.md)"),
}
SCRIPT = "train_gpt.py (records/track_10min_16mb/2026-03-23_LeakyReLU_LegalTTT_ParallelMuon)"


def configuration(row: dict) -> str:
    """explicit_banks, ..., script; the fused-EMA A/B is told apart by its toggles."""
    if row["variant"] is None:
        return "script"
    ema = (row.get("toggles") or {}).get("ema")
    return f"{row['variant']}@emaforeach" if ema == "foreach" else row["variant"]


def _published_mean(name: str) -> float:
    ms = PUBLISHED[name][0]
    return sum(ms) / 2 if isinstance(ms, tuple) else ms


def row(call: str, r: dict) -> dict:
    """One device run, its numbers rounded as the results file keeps them."""
    name = configuration(r)
    kernels = r.get("kernels_first_step") or []
    lines = {b["line"]: round(b["ms"], 3) for b in r.get("target_breakdown") or []}
    out = {"configuration": name, **({"script": SCRIPT} if name == "script" else {"variant": r["variant"]}),
           "call": call, "run": r["run"], "world": 8, "played_rank": (r.get("played_ranks") or [None])[0],
           "target_gpu": r["target_gpu"], "record_shapes": r.get("record_shapes"),
           "predicted_ms": round(r["predicted_ms"], 2), "interval_ms": [round(x, 2) for x in r["interval_ms"]],
           "roofline_rule_ms": round((r.get("alternative") or {}).get("ms_per_step") or float("nan"), 2),
           "predicted_h200_ms": round(r["source_ms"], 2),
           "h200_interval_ms": [round(x, 2) for x in r["source_interval_ms"]],
           "measured_ms_of_played_rank": round(r["measured_ms_of_played_rank"], 2),
           "breakdown_h100": lines,
           "kernel_ms_per_step_h200": round(sum(k["source_ms"] for k in kernels), 2),
           "kernels_per_step_h200": sum(k["kernels"] for k in kernels),
           "attention_used": r.get("attention_used"), "toggles": r.get("toggles")}
    ms, source = PUBLISHED[name]
    out["published_ms"] = list(ms) if isinstance(ms, tuple) else ms
    out["published_source"] = source
    out["vs_published_pct"] = round(100 * (r["predicted_ms"] / _published_mean(name) - 1), 1)
    return out


def summary(rows: list[dict]) -> dict:
    """Per configuration: mean, range and intervals over the calls; deltas against explicit_banks."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["configuration"], []).append(r)
    means = {n: round(statistics.fmean(r["predicted_ms"] for r in rs), 2) for n, rs in by.items()}
    out: dict = {"means_ms": means,
                 "range_ms": {n: [min(r["predicted_ms"] for r in rs), max(r["predicted_ms"] for r in rs)]
                              for n, rs in by.items()},
                 "repeats": {n: len(rs) for n, rs in by.items()},
                 "vs_published_pct_of_mean": {n: round(100 * (m / _published_mean(n) - 1), 1)
                                              for n, m in means.items()}}
    base = "explicit_banks"
    deltas = {}
    for n in by:
        if n == base or base not in by:
            continue
        lo, hi = (by[n], by[base]) if means[n] <= means[base] else (by[base], by[n])
        apart = max(r["interval_ms"][1] for r in lo) < min(r["interval_ms"][0] for r in hi)
        pub = round(_published_mean(n) - _published_mean(base), 2)
        d = round(means[n] - means[base], 2)
        deltas[f"{n} - {base}"] = {"predicted_ms": d, "published_ms": pub, "off_ms": round(d - pub, 2),
                                   "sign_met": (d > 0) == (pub > 0) if pub else None,  # None: none published
                                   "intervals": "distinguishable" if apart else "not distinguishable"}
    out["deltas_ms"] = deltas
    return out


def main(argv: list[str]) -> int:
    if not argv or any("=" not in a for a in argv):
        print("usage: prediction_rows.py CALL=PREDICT_JSON [...]", file=sys.stderr)
        return 2
    rows = []
    for arg in argv:
        call, path = arg.split("=", 1)
        rows += [row(call, r) for r in json.loads(Path(path).read_text())]
    json.dump({"rows": rows, **summary(rows)}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
