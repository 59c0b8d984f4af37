"""PATHs -> the dashboard page: find runs, load their traces, build frames, figures and sections.

Timelines and overlap are drawn for one run per configuration (the earliest with traces): repeats
of a configuration would draw the same picture again. The diff reads the traces the timeline has
loaded, so a trace drawn and diffed is parsed once.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from golfprof.errors import ConfigError
from golfprof.profiler.names import DEFAULT_PHASE_REGEX
from golfprof.profiler.rundir import COMPARISON_JSON
from golfprof.profiler.rundir import write_text as write_atomic
from golfprof.results import BASELINE
from golfprof.results.health import throttle_notes
from golfprof.results.regress import parse_bound
from golfprof.results.samples import RunSamples, load_run
from golfprof.traces.discover import discover
from golfprof.traces.load import TraceError, load_trace
from golfprof.traces.ranks import load_ranks, summary_and_kernels

from . import charts, data, diffs, tables, timeline
from .colors import palette
from .page import Chart, Section, render
from .runs import DashboardError, Found, Run, TraceSet, find_runs


@dataclass
class Options:
    max_increase: str = "5%"
    baseline: Path | None = None  # trend baseline: run directory, summary.json or baseline file
    baseline_variant: str | None = None  # comparison baseline: variant name or configuration label
    order: str = "time"  # trend order: "time" (run start) or "given" (as PATHs list them)
    step: int | None = None  # profiler step to draw; default the median-length one
    phases: str = DEFAULT_PHASE_REGEX
    title: str | None = None
    diff: bool = True  # the Diff section, when two or more runs have traces


@dataclass
class Report:
    html: str
    charts: dict[str, list[str]] = field(default_factory=dict)  # section kind -> ids of drawn charts
    empty: dict[str, str] = field(default_factory=dict)  # section kind -> why nothing is drawn
    runs: int = 0


@dataclass
class Traced:
    run: Run | TraceSet
    label: str
    ranks: list[timeline.RankTrace]
    window_note: str | None
    diff_inputs: diffs.RankInputs | None  # what golfprof diff reads, when this run is diffed


def _load_traced(run: Run | TraceSet, label: str, pattern: re.Pattern[str], diffed: bool) -> Traced:
    """The first profiling window's ranks; each trace is parsed once, for the timeline and the diff alike."""
    ranks, inputs = [], {}
    try:
        found = discover(run.path)
        for rank, tf in sorted(found.windows[0].items()):
            trace = load_trace(tf.path)
            ranks.append(timeline.load_rank(trace, rank, pattern))
            if diffed:
                inputs[rank] = summary_and_kernels(trace, rank, pattern)
    except TraceError as e:
        raise DashboardError(str(e)) from None
    note = f"{run.name}: {len(found.windows)} profiling windows, the first is drawn" if len(found.windows) > 1 else None
    return Traced(run, label, ranks, note, inputs if diffed else None)


def _first_traced(runs: list[Run], labels: list[str]) -> dict[str, Run]:
    """Configuration label -> its earliest run with traces: the one its timeline draws."""
    out = {}
    for label in dict.fromkeys(labels):
        mine = data.ordered([r for r, lab in zip(runs, labels) if lab == label], "time")
        first = next((r for r in mine if r.traces()), None)
        if first is not None:
            out[label] = first
    return out


def _comparison_baseline(runs: list[Run], labels: list[str], wanted: str | None) -> str:
    by_variant = {str(r.summary.get("variant")): lab for r, lab in reversed(list(zip(runs, labels)))}
    if wanted is not None:
        if wanted in labels:
            return wanted
        if wanted in by_variant:
            return by_variant[wanted]
        raise DashboardError(f"--baseline-variant {wanted!r} is not among the runs: {', '.join(dict.fromkeys(labels))}")
    for r in runs:
        if r.matrix_baseline in by_variant:
            return by_variant[r.matrix_baseline]
    return by_variant.get(BASELINE, labels[0])


TIMELINE_INTRO = ("One profiled step per rank: CPU threads show the innermost open phase, GPU streams the kernels "
                  "coloured by the phase that launched them, and the red lane the communication time with no "
                  "compute kernel running. Hover for the numbers; drag to zoom.")
OVERLAP_INTRO = ("Per phase and rank: NCCL kernel time per profiled step, split into the part hidden under compute "
                 "kernels and the exposed part (nothing else running on the GPU). 'all phases' is the union.")


def _step_timelines(t: Traced, step: int | None, notes: list[str]) -> list[timeline.RankTimeline]:
    """Every rank's lanes for one profiled step, on one clock; a rank that lacks the step is noted, not drawn."""
    chosen = step if step is not None else timeline.pick_step(t.ranks[0])
    try:
        shift = timeline.clock_shifts(t.ranks)  # one clock: base times, measured offsets
        origin = timeline.step_start(t.ranks[0], chosen) + shift[t.ranks[0].rank]
    except KeyError:
        profiled = ", ".join(str(s) for s in t.ranks[0].steps["step"])
        raise DashboardError(f"--step {chosen}: not a profiled step of {t.run.name} (profiled: {profiled})") from None
    tls = []
    for rt in t.ranks:
        try:
            tls.append(timeline.step_timeline(rt, chosen, origin - shift[rt.rank]))
        except KeyError:
            notes.append(f"{t.run.name}: rank {rt.rank}'s trace lacks profiler step {chosen}; not drawn")
    return tls


def _timeline_chart(i: int, t: Traced, colors: dict[str, str], step: int | None, sec: Section) -> None:
    """One traced run's step timeline into ``sec``, with its notes."""
    tls = _step_timelines(t, step, sec.notes)
    if t.window_note:
        sec.notes.append(t.window_note)
    if sum(len(x.segments) for x in tls):
        lo = tls[0]
        gpu = f" · its GPU work ends at {lo.gpu_end_ms:.1f} ms" if lo.gpu_end_ms is not None else ""
        title = (f"Step timeline · {t.label}<br><sup>{t.run.name} · profiler step {lo.step} · {len(tls)} rank(s) · "
                 f"rank {lo.rank}: CPU step {lo.cpu_step_ms:.1f} ms{gpu}</sup>")
        sec.charts.append(Chart(f"chart-timeline-{i}", charts.timeline_figure(tls, colors, title),
                                tables.timeline_table(tls)))
    if all(rt.gpu.empty for rt in t.ranks):
        sec.notes.append(f"{t.run.name}: CPU-only trace (no GPU events): lanes are CPU threads, collectives "
                         "run on their own threads")


def _overlap_chart(i: int, t: Traced, sec: Section) -> None:
    """One traced run's hidden-vs-exposed communication into ``sec``, when its traces hold any."""
    ov = pd.concat([timeline.comm_overlap(rt) for rt in t.ranks], ignore_index=True)
    if ov.empty:
        return
    from golfprof.predict.replay import MODELLED  # how a simulated run's predicted trace names its collectives

    predicted = any(rt.gpu["name"].astype(str).str.contains(MODELLED, regex=False).any() for rt in t.ranks)
    what = "PREDICTED communication (modelled collectives)" if predicted else "Communication"
    title = f"{what} hidden vs exposed · {t.label}<br><sup>{t.run.name} · ms per profiled step</sup>"
    sec.charts.append(Chart(f"chart-overlap-{i}", charts.overlap_figure(ov, title), tables.overlap_table(ov)))


def _overlap_empty(traced: list[Traced]) -> str:
    if not traced:
        return "no traces"
    if all(rt.gpu.empty for t in traced for rt in t.ranks):
        return "the traces have no GPU events (CPU runs): overlap is measured on GPU communication kernels"
    return ("no communication kernels in the traces (a single-GPU run launches none; "
            "NCCL kernels appear with --nproc 2 or more)")


def _timeline_sections(traced: list[Traced], colors: dict[str, str], step: int | None,
                       any_runs: int) -> tuple[Section, Section]:
    """The Step timeline and Communication overlap sections: one chart each per traced run."""
    tl_sec = Section("timeline", "Step timeline", TIMELINE_INTRO)
    ov_sec = Section("overlap", "Communication overlap", OVERLAP_INTRO)
    for i, t in enumerate(traced):
        _timeline_chart(i, t, colors, step, tl_sec)
        _overlap_chart(i, t, ov_sec)
    if not traced:
        tl_sec.empty = (f"none of the {any_runs} run(s) has a trace (trace/rank*.pt.trace.json.gz); "
                        "record one with --profile-steps")
    elif not tl_sec.charts:
        tl_sec.empty = "the traces hold no phase ranges or GPU work in their profiled steps"
    if not ov_sec.charts:
        ov_sec.empty = _overlap_empty(traced)
    return tl_sec, ov_sec


def _comparison_section(runs: list[Run], labels: list[str], baseline: str, colors: dict[str, str],
                        stored: dict | None) -> Section:
    cmp = data.comparison(runs, labels, baseline, stored)
    sec = Section("comparison", "Variant comparison",
                  "Per configuration: median ms per step stacked by the always-on phase timers (direct children of "
                  "the step; 'outside phases' is the rest), whiskers the 95% CI from the repeated runs (one run: from "
                  "batches of its steps), and the optimizer on its own scale. Same statistics as comparison.json.")
    caption = f"baseline: {baseline}" + (f" · figures read from the matrix's {COMPARISON_JSON}"
                                         if cmp.source == COMPARISON_JSON else "")
    sec.charts.append(Chart("chart-comparison", charts.comparison_figure(cmp, colors), tables.comparison_table(cmp),
                            caption=caption))
    return sec


def _diff_inputs(run: Run, traced: list[Traced], pattern: re.Pattern[str]) -> diffs.RankInputs:
    """From the timeline's load when the run is drawn there; a repeat is read as golfprof diff reads it."""
    for t in traced:
        if t.run is run and t.diff_inputs is not None:
            return t.diff_inputs
    try:
        return load_ranks(run.path, pattern)
    except TraceError as e:
        raise DashboardError(str(e)) from None


def _diff_charts(i: int, d: diffs.RunDiff, head: str) -> list[Chart]:
    step = diffs.step_change(d, d.ranks[0])
    sub = f"{d.b} − {d.a} · rank{'s' if len(d.ranks) > 1 else ''} {', '.join(map(str, d.ranks))}"
    sub += f" · rank {d.ranks[0]}: {step}" if step else ""
    out = []
    for kind, frame, what, figure, table in (
            ("phases", d.phases, "Δ ms per step by phase", charts.diff_phase_figure, tables.diff_phase_table),
            ("kernels", d.kernels, "kernel groups that appeared, vanished or changed most", charts.diff_kernel_figure,
             tables.diff_kernel_table),
            ("families", d.families, "time per kernel family (attention, matmul, Triton, other)",
             charts.diff_kernel_figure, tables.diff_kernel_table)):
        if frame.empty:
            continue
        cut = ""
        if len(frame) > charts.MAX_BARS:
            cut = f" · largest {charts.MAX_BARS} of {len(frame)} (the table lists all)"
        title = f"Diff · {head}: {what}<br><sup>{sub}{cut}</sup>"
        out.append(Chart(f"chart-diff-{kind}-{i}", figure(frame, d.ranks, title), table(frame)))
    if out:
        out[0].caption = " · ".join(d.notes)
    return out


def _diff_section(base: Run, others: list[Run], left_out: int, label_of: dict[int, str], baseline: str,
                  inputs: dict[int, diffs.RankInputs]) -> Section:
    sec = Section("diff", "Diff",
                  f"The baseline run {base.name} (A) against up to {diffs.MAX_DIFFS} other runs with traces (B), as "
                  "golfprof diff A B computes it on the first profiling window: per phase the change in GPU busy and "
                  "CPU time per step, largest first, then the kernel groups that appeared in B, vanished from A or "
                  "changed most. Positive: B spends more.")
    a_label = label_of[id(base)]
    if a_label != baseline:
        sec.notes.append(f"the comparison baseline {baseline} has no traces: A is {base.name} ({a_label})")
    same = 0
    for i, run in enumerate(others):
        d = diffs.diff_runs(base.name, inputs[id(base)], run.name, inputs[id(run)])
        b_label = label_of[id(run)]
        head = f"{b_label} vs {a_label}" if b_label != a_label else f"{b_label}: {run.name} vs {base.name}"
        if d.same:
            same += 1
            sec.notes.append(f"{run.name} vs {base.name}: no difference — the same phase times, kernels and "
                             f"collectives per step on rank(s) {', '.join(map(str, d.ranks))}")
            continue
        drawn = _diff_charts(i, d, head)
        if not drawn:
            sec.notes += [f"{run.name} vs {base.name}: {n}" for n in d.notes]
        sec.charts += drawn
    if left_out:
        sec.notes.append(f"{left_out} more run(s) with traces not diffed (at most {diffs.MAX_DIFFS}): "
                         "golfprof diff A B compares any two")
    if not sec.charts:
        sec.empty = ("no difference: the diffed runs' traces match the baseline's" if same == len(others)
                     else "no phase or kernel time moved (see the notes)")
    return sec


def _trend_section(runs: list[Run], labels: list[str], opts: Options, bound: float) -> Section:
    series = data.ordered(runs, opts.order)
    order_of = {id(r): i for i, r in enumerate(runs)}
    series_labels = [labels[order_of[id(r)]] for r in series]
    if opts.baseline is not None:
        try:
            base: RunSamples = load_run(opts.baseline)
        except ConfigError as e:
            raise DashboardError(f"--baseline: {e}") from None
        base_name = str(opts.baseline)
    else:
        base, base_name = series[0].samples, series[0].name
    frame, notes = data.trend(series, series_labels, base, bound)
    how = "by run start time" if opts.order == "time" else "in the order given"
    sec = Section("trend", "Trend",
                  f"ms/step and optimizer ms over the runs ({how}), against the baseline {base_name}: the dashed line "
                  f"is the regression threshold (+{bound:g}%, as golfprof regress --max-increase); red points are "
                  "significant regressions beyond it, orange ones are above it without significance.", notes=notes)
    n = frame["run"].nunique() if not frame.empty else 0
    if n >= 2:
        sec.charts.append(Chart("chart-trend", charts.trend_figure(frame, bound), tables.trend_table(frame)))
    else:
        sec.empty = f"a trend needs two or more comparable runs; there {'is' if n == 1 else 'are'} {n}"
    return sec


SECTIONS = ("timeline", "overlap", "comparison", "diff", "trend")  # the page's order
NOT_RUNS = "the inputs are Kineto traces, not golfprof run directories: there are no step timers to {}"


def _checked(opts: Options) -> tuple[float, re.Pattern[str]]:
    """The trend bound and the phase regex; bad options are a DashboardError before anything is read."""
    try:
        bound = parse_bound(opts.max_increase)
        pattern = re.compile(opts.phases)
    except ConfigError as e:
        raise DashboardError(str(e)) from None
    except re.error as e:
        raise DashboardError(f"--phases {opts.phases!r} is not a valid regex ({e})") from None
    if opts.order not in ("time", "given"):
        raise DashboardError(f"--order {opts.order!r}: valid: time, given")
    return bound, pattern


@dataclass
class _Plan:
    """What the page draws: the runs and their labels, the comparison baseline, the traced runs and the diffs."""

    found: Found
    labels: list[str]
    baseline: str
    traced: list[Traced]
    diff_base: Run | None
    diff_others: list[Run]
    diff_left_out: int

    @property
    def runs(self) -> list[Run]:
        return self.found.runs


def _plan(paths: list[Path], opts: Options, pattern: re.Pattern[str]) -> _Plan:
    found = find_runs(paths)
    runs = found.runs
    labels = data.group_labels([r.summary for r in runs])
    baseline = _comparison_baseline(runs, labels, opts.baseline_variant) if runs else ""
    firsts = _first_traced(runs, labels)
    with_traces = [r for r in data.ordered(runs, "time") if r.traces()]
    base, others, left_out = diffs.plan(firsts, with_traces, baseline) if opts.diff else (None, [], 0)
    diffed = {id(r) for r in [base, *others]} if others else set()
    traced = [_load_traced(r, label, pattern, id(r) in diffed) for label, r in firsts.items()]
    traced += [_load_traced(ts, ts.name, pattern, False) for ts in found.trace_sets]
    return _Plan(found, labels, baseline, traced, base, others, left_out)


def _colors(plan: _Plan) -> dict[str, str]:
    """One colour per phase across every chart: the comparison's stack, then what the traces name."""
    ranks = [rt for t in plan.traced for rt in t.ranks]
    names = data.stack_phases([r.samples for r in plan.runs])
    names += [p for rt in ranks for p in rt.phase_order]
    names += [p for rt in ranks for p in pd.unique(rt.gpu["phase"])]
    names += [p for rt in ranks for p in pd.unique(rt.collectives_cpu["name"])]
    return palette([*names, data.OUTSIDE, timeline.EXPOSED])


def _stored_comparison(found: Found) -> dict | None:
    """The matrix's comparison.json, when every run drawn comes from that one matrix."""
    matrices = {r.matrix for r in found.runs}
    return found.comparisons.get(next(iter(matrices))) if len(matrices) == 1 else None


def _sections(plan: _Plan, opts: Options, bound: float, pattern: re.Pattern[str]) -> list[Section]:
    """Every section, in the page's order (SECTIONS); the Diff section only when there is a diff to draw."""
    colors = _colors(plan)
    runs = plan.runs
    tl_sec, ov_sec = _timeline_sections(plan.traced, colors, opts.step, len(runs) + len(plan.found.trace_sets))
    by_kind = {"timeline": tl_sec, "overlap": ov_sec}
    if runs:
        by_kind["comparison"] = _comparison_section(runs, plan.labels, plan.baseline, colors,
                                                    _stored_comparison(plan.found))
        by_kind["trend"] = _trend_section(runs, plan.labels, opts, bound)
    else:  # traces from any trainer: no step timers to compare or trend
        by_kind["comparison"] = Section("comparison", "Variant comparison", "", empty=NOT_RUNS.format("compare"))
        by_kind["trend"] = Section("trend", "Trend", "", empty=NOT_RUNS.format("follow over runs"))
    if plan.diff_base is not None and plan.diff_others:
        label_of = {id(r): lab for r, lab in zip(runs, plan.labels)}
        inputs = {id(r): _diff_inputs(r, plan.traced, pattern) for r in (plan.diff_base, *plan.diff_others)}
        by_kind["diff"] = _diff_section(plan.diff_base, plan.diff_others, plan.diff_left_out, label_of,
                                        plan.baseline, inputs)
    return [by_kind[k] for k in SECTIONS if k in by_kind]


def _meta(plan: _Plan, paths: list[Path]) -> tuple[list[str], list[str]]:
    """(the page's lines under the title, its devices)."""
    runs = plan.runs
    devices = sorted({str(r.summary.get("device")) for r in runs}) or ["Kineto traces"]
    sets = f" · {len(plan.found.trace_sets)} trace set(s)" if plan.found.trace_sets else ""
    meta = [f"{len(runs)} run(s), {len(set(plan.labels))} configuration(s){sets} · {', '.join(devices)}",
            "from: " + " ".join(str(p) for p in paths),
            f"generated {dt.datetime.now().strftime('%Y-%m-%d %H:%M:%S')} by golfprof dashboard"]
    throttled = throttle_notes({r.name: r.summary for r in runs})  # runs whose GPU throttled: flagged up top
    return meta + [f"note: {n}" for n in [*plan.found.notes, *throttled]], devices


def build(paths: list[Path], opts: Options) -> Report:
    """Everything but the write; raises DashboardError on bad input."""
    bound, pattern = _checked(opts)
    plan = _plan(paths, opts, pattern)
    sections = _sections(plan, opts, bound, pattern)
    meta, devices = _meta(plan, paths)
    title = opts.title or f"golfprof dashboard · {', '.join(devices)}"
    return Report(html=render(title, meta, sections), runs=len(plan.runs),
                  charts={s.kind: [c.id for c in s.charts] for s in sections if s.charts},
                  empty={s.kind: s.empty for s in sections if not s.charts and s.empty})


def write(paths: list[Path], out: Path, opts: Options) -> Report:
    report = build(paths, opts)
    write_atomic(out, report.html)  # an OSError is the CLI's `error: <path>: <reason>`, exit 1
    return report
