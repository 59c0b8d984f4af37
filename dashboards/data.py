"""Runs -> the frames the comparison and trend charts draw (pure: no files, no figures).

The comparison's rows are ``golfprof.results.comparison.compare_groups``'s, the function that writes
``comparison.json`` (a matrix's own file is read when it holds the same rows), and the trend's
regression flag is the gate of ``golfprof regress``, so the dashboard never disagrees with the
command line.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from golfprof.errors import ConfigError
from golfprof.profiler import names
from golfprof.profiler.rundir import COMPARISON_JSON
from golfprof.results import stats
from golfprof.results.comparison import compare_groups, row_verdict
from golfprof.results.regress import check_comparable, gate_metric
from golfprof.results.samples import PHASE_PREFIX, RunSamples

from .runs import Run

STEP_CHILDREN = (names.DATA, names.FORWARD, names.BACKWARD, names.GRAD_CLIP, names.OPTIMIZER, names.EMA)
OUTSIDE = "outside phases"
TREND_METRICS = ("ms_per_step", "optimizer_ms")


def short_phase(name: str) -> str:
    """'golfprof/step/optimizer/muon' -> 'optimizer/muon'; the step range itself -> 'step'."""
    if name == names.STEP:
        return "step"
    return name.removeprefix(names.STEP + "/")


def _identity(summary: dict[str, Any]) -> dict[str, Any]:
    """The settings that make two runs the same configuration (steps and seeds do not)."""
    toggles = summary.get("toggles") if isinstance(summary.get("toggles"), dict) else {}
    ident = {f: summary.get(f) for f in ("preset", "world_size")}
    ident |= {k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in toggles.items()}
    return ident | {f: summary.get(f) for f in ("tokens_per_step", "device")}


def group_labels(summaries: list[dict[str, Any]]) -> list[str]:
    """One label per run: its variant, plus the fewest settings that tell same-named configurations apart.

    Repeats of a configuration share a label (one bar with error bars); two runs of one variant
    with, say, different ``--ortho`` or presets are different bars.
    """
    ids = [_identity(s) for s in summaries]
    variants = [str(s.get("variant", "?")) for s in summaries]
    labels = []
    for v, ident in zip(variants, ids):
        distinct = list({json.dumps(i, sort_keys=True, default=str): i
                         for i, w in zip(ids, variants) if w == v}.values())
        chosen: list[str] = []
        for f in ident:  # settings in priority order, added until every configuration reads differently
            if len({tuple(str(i.get(c)) for c in chosen) for i in distinct}) == len(distinct):
                break
            if len({str(i.get(f)) for i in distinct}) > 1:
                chosen.append(f)
        labels.append(" · ".join([v, *(f"{f}={ident.get(f)}" for f in chosen)]))
    return labels


@dataclass
class Comparison:
    frame: pd.DataFrame  # one row per configuration, baseline first
    stack: list[str]  # phase names stacked (children of golfprof/step), then OUTSIDE
    source: str = "computed"  # "comparison.json" when the rows are a matrix's own, as `golfprof ablate` wrote them


def stack_phases(runs: list[RunSamples]) -> list[str]:
    """Direct children of the step that any run recorded, in step order: they tile the step."""
    seen: set[str] = set()
    for r in runs:
        seen |= {k.removeprefix(PHASE_PREFIX) for k in r.samples if k.startswith(PHASE_PREFIX)}
        seen |= set(r.summary.get("phase_ms") or {})
    children = {p for p in seen if names.is_top_level(p)}
    return [p for p in STEP_CHILDREN if p in children] + sorted(children - set(STEP_CHILDREN))


def _stored_rows(stored: dict[str, Any] | None, groups: dict[str, list[RunSamples]], baseline: str,
                 metrics: list[str]) -> dict[tuple[str, str], dict[str, Any]] | None:
    """A matrix's comparison.json rows, when they are exactly the rows wanted here: the same baseline, every
    configuration one of its variants with as many runs, every metric there. Else None (compute them)."""
    if stored is None or stored.get("baseline") != baseline:
        return None
    rows = {(r.get("variant"), r.get("metric")): r for r in stored["rows"] if isinstance(r, dict)}
    for label, runs in groups.items():
        for metric in metrics:
            row = rows.get((label, metric))
            if row is None or row.get("runs") != len(runs) or (label != baseline) != ("diff" in row):
                return None
    return rows


def _frame_row(label: str, baseline: str, rows: dict[tuple[str, str], dict[str, Any]],
               stack: list[str]) -> dict[str, Any]:
    """One configuration's bar: ms/step and optimizer ms with CIs and their verdicts, and the stacked phases."""
    tot, opt = rows[(label, "ms_per_step")], rows[(label, "optimizer_ms")]
    row: dict[str, Any] = {"variant": label, "baseline": label == baseline, "runs": tot["runs"],
                           "ms_per_step": tot["value"], "ms_lo": tot["ci_lo"], "ms_hi": tot["ci_hi"],
                           "optimizer_ms": opt["value"], "opt_lo": opt["ci_lo"], "opt_hi": opt["ci_hi"],
                           "ci": tot["ci_method"]}
    for r, key in ((tot, "ms"), (opt, "opt")):
        if "diff" in r:  # both metrics are times: the shared verdict, worded as the charts read it
            row[f"{key}_diff_pct"], row[f"{key}_verdict"] = r["diff_pct"], row_verdict(r, "faster", "slower")
        else:
            row[f"{key}_diff_pct"], row[f"{key}_verdict"] = math.nan, "(baseline)" if label == baseline else ""
    parts = {p: rows[(label, PHASE_PREFIX + p)]["value"] for p in stack}
    known = sum(v for v in parts.values() if not math.isnan(v))
    parts[OUTSIDE] = max(tot["value"] - known, 0.0) if not math.isnan(tot["value"]) else math.nan
    return row | parts


def comparison(runs: list[Run], labels: list[str], baseline: str,
               stored: dict[str, Any] | None = None) -> Comparison:
    """Per configuration: ms/step and optimizer ms with 95% CIs, per-phase ms, change vs baseline.

    The rows are ``results.comparison.compare_groups``'s, as `golfprof ablate` computes them; ``stored`` (a
    matrix's comparison.json) is read instead when it holds exactly these configurations and metrics.
    """
    groups: dict[str, list[RunSamples]] = {}
    for r, label in zip(runs, labels):
        groups.setdefault(label, []).append(r.samples)
    order = [baseline] + [g for g in groups if g != baseline] if baseline in groups else list(groups)
    groups = {g: groups[g] for g in order}
    stack = stack_phases([s for g in groups.values() for s in g])
    metrics = ["ms_per_step", "optimizer_ms", *(PHASE_PREFIX + p for p in stack)]
    rows = _stored_rows(stored, groups, baseline, metrics)
    source = COMPARISON_JSON if rows is not None else "computed"
    if rows is None:
        rows = {(r["variant"], r["metric"]): r for r in compare_groups(groups, baseline, metrics)}
    frame = pd.DataFrame([_frame_row(label, baseline, rows, stack) for label in order])
    return Comparison(frame=frame, stack=[*stack, OUTSIDE], source=source)


def ordered(runs: list[Run], order: str) -> list[Run]:
    """'time': by run start; 'given': as the PATHs listed them."""
    if order == "given":
        return list(runs)
    return sorted(runs, key=lambda r: (r.started, r.name))


def trend(runs: list[Run], labels: list[str], baseline: RunSamples, bound_pct: float) -> tuple[pd.DataFrame, list[str]]:
    """Per run and metric: median with 95% CI, the regress gate's verdict against ``baseline``.

    Runs the gate refuses to compare (other preset, world size or device) are left out, with a note.
    """
    label_of = {id(r): lab for r, lab in zip(runs, labels)}
    rows, notes = [], []
    for i, r in enumerate(runs):
        try:
            check_comparable(r.samples, baseline)
        except ConfigError as e:
            notes.append(f"left out of the trend: {r.name} ({e})")
            continue
        for metric in TREND_METRICS:
            try:
                g = gate_metric(r.samples, baseline, metric, bound_pct)
            except ConfigError as e:
                notes.append(f"{r.name}: {e}")
                continue
            est = stats.estimate([r.samples.values(metric)])
            rows.append({
                "order": i, "run": r.name, "variant": label_of[id(r)],
                "started": dt.datetime.fromtimestamp(r.started).strftime("%Y-%m-%d %H:%M:%S"),
                "git": r.git or "", "metric": metric, "value": g["current"], "ci_lo": est.lo, "ci_hi": est.hi,
                "baseline": g["baseline"], "threshold": g["baseline"] * (1 + bound_pct / 100),
                "change_pct": g["change_pct"], "regressed": g["regressed"], "why": g["why"],
            })
    cols = ["order", "run", "variant", "started", "git", "metric", "value", "ci_lo", "ci_hi", "baseline",
            "threshold", "change_pct", "regressed", "why"]
    frame = pd.DataFrame(rows, columns=cols)
    return frame, notes

