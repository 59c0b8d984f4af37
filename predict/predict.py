"""Prediction of a simulated run directory: reads what its fake ranks recorded, replays it through the
cost model (predict/replay.py, pure) and writes the prediction beside the run's own files:

- ``simulated/predicted.json``: `golfprof analyze`'s JSON schema for the predicted traces, with
  ``"predicted": true`` and a ``prediction`` block (ms/step, optimizer ms, exposed communication
  per phase, overlap %, every collective with its modelled time, the table and its sources);
- ``simulated/trace/rank<R>.pt.trace.json.gz``: each simulated rank's predicted timeline, the
  modelled collectives on their own stream, for Perfetto.

A CUDA run is replayed from its Kineto trace (GPU kernels, launch times, the recorder's
``golfprof.comm#``/``golfprof.wait#`` ranges); a CPU run from the recorder's own timeline. Each predicted
trace is analysed from the text it is written from (``load_trace(path, text=...)``): no file is read back.
predict() reads inputs -> builds each step's work (GPU or CPU) -> replays the steps -> figures -> traces ->
the document, one function each.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import pandas as pd

from golfprof.errors import ConfigError
from golfprof.profiler.names import DEFAULT_PHASE_REGEX, MUON
from golfprof.profiler.record import RunRecord, Simulated
from golfprof.profiler.rundir import RunDir, write_json

from . import anchor, attribution, breakdown, costmodel, deflate, devices, intervals, replay, rescale, shapes, target

GPU_SOURCE = "kineto trace (profiled steps), on the rank's median unprofiled step"
CPU_SOURCE = "recorder timeline (timed steps)"
COLLECTIVE_KEYS = ["seq", "op", "dtype", "bytes", "group_size", "phase", "source", "us", "protocol", "link",
                   "exposed_ms"]


@dataclass
class Inputs:
    """What a prediction reads from a simulated run directory, read once."""

    rd: RunDir
    record: RunRecord
    sim: Simulated
    nodes: int
    model: costmodel.CommModel
    colls: dict[int, pd.DataFrame]  # simulated rank -> its recorded collectives
    events: dict[int, pd.DataFrame]  # simulated rank -> its phase enter/exit marks
    step_ms: dict[int, pd.Series] = field(default_factory=dict)  # simulated rank -> its step timers by step
    phase_ms: dict[int, pd.DataFrame] = field(default_factory=dict)  # simulated rank -> its phase timers
    deflation: dict[str, Any] | None = None  # what predict/deflate.py took out of the first rank's profiled steps

    @property
    def ranks(self) -> list[int]:
        return sorted(self.colls)

    @property
    def world(self) -> int:
        return self.sim.world_size


class Work(NamedTuple):
    """One simulated rank's share of one step to replay."""

    rank: int
    role: replay.RoleStep
    colls: pd.DataFrame  # its collectives in the step
    ranges: list  # (phase, start, end) CPU ranges, step-relative
    names: list[str]  # its items' names (GPU kernels; empty on the CPU)
    corrs: tuple[int, ...] = ()  # its kernels' correlation ids (GPU)


@dataclass
class Replayed:
    step: int
    colls: pd.DataFrame  # the step's collectives with their modelled durations
    rows: list[Work]
    result: replay.StepReplay


def read_inputs(run_dir: Path, comm_model: str | Path | None, nodes: int | None) -> Inputs:
    """The record, the cost table (the device's default unless given) and every simulated rank's files."""
    rd = RunDir(run_dir)
    record = rd.read_record()
    if record.simulated is None:
        raise ConfigError(f"{run_dir}: summary.json has no 'simulated' block: not a simulated run")
    ranks = rd.simulated_ranks()
    if not ranks:
        raise ConfigError(f"{run_dir}: not a simulated run (no collectives recorded under {rd.simulated_dir.name}/)")
    colls = {r: pd.read_parquet(rd.collectives(r)) for r in ranks}
    events = {r: pd.read_parquet(rd.phase_events(r)) for r in ranks if rd.phase_events(r).is_file()}
    model = costmodel.load(comm_model or costmodel.default_for_device(record.device))
    step_ms = {r: pd.read_parquet(rd.steps(r)).set_index("step").ms for r in ranks if rd.steps(r).is_file()}
    phase_ms = {r: pd.read_parquet(rd.phases(r)) for r in ranks if rd.phases(r).is_file()}
    return Inputs(rd, record, record.simulated, int(nodes or record.simulated.nodes or 1), model, colls, events,
                  step_ms, phase_ms)


def _unprofiled(inp: Inputs, rank: int, replayed: list[int]) -> list[int]:
    """The timed steps a rank's prediction stands on: those it timed less any it replayed, or, where it replayed
    every step it timed (a CPU run; a window reaching the run's end), all it timed."""
    ms = inp.step_ms.get(rank)
    timed = [] if ms is None else [s for s in inp.rd.timed_steps() if s in ms.index]
    return [s for s in timed if s not in replayed] or timed


def anchor_of(inp: Inputs, replayed: list[int]) -> dict[str, Any] | None:
    """The first simulated rank's replayed steps against the unprofiled ones it stands on (predict/anchor.py)."""
    r = inp.ranks[0]
    if r not in inp.step_ms:
        return None
    return anchor.check(inp.step_ms[r], _unprofiled(inp, r, replayed), replayed, inp.deflation)


def _durations(model: costmodel.CommModel, colls: pd.DataFrame, world: int, nodes: int) -> pd.DataFrame:
    est = [model.time(r.op, r.bytes, world, nodes) for r in colls.itertuples()]
    return colls.assign(us=[e.us for e in est], protocol=[e.protocol for e in est], link=[e.link for e in est])


def _gpu_inputs(inp: Inputs) -> dict[int, list] | None:
    """Per rank, the profiled steps of its Kineto trace when every simulated rank has one with GPU kernels."""
    from golfprof.traces.load import load_trace

    if "cpu" in str(inp.record.device or "cpu"):
        return None
    out = {}
    for r in inp.ranks:
        path = inp.rd.trace(r)
        if not path.is_file():
            return None
        steps = replay.gpu_role_steps(load_trace(path).events, inp.colls[r])
        if not steps or not any(len(t.role.launch) for t in steps):
            return None
        out[r] = steps
    return out


def gpu_work(inp: Inputs, gpu: dict[int, list]) -> dict[int, list[Work]]:
    """Each profiled step of each rank's trace, with the profiler's CPU time taken out phase by phase
    (predict/deflate.py), standing on the rank's median unprofiled step (the profiler slows the steps it records;
    the delays are the trace's)."""
    work: dict[int, list[Work]] = {}
    for r in inp.ranks:
        steps = _unprofiled(inp, r, [t.step for t in gpu[r]])
        unprofiled = float(inp.step_ms[r].loc[steps].median()) if steps else None
        timers = deflate.timer_medians(inp.phase_ms[r], steps) if r in inp.phase_ms else {}
        fitted = []
        for t in gpu[r]:
            c = inp.colls[r].set_index("seq").loc[t.seqs].reset_index() if t.seqs else inp.colls[r].iloc[0:0]
            fit = deflate.fits(t.ranges, timers)
            role, ranges = deflate.deflate(t.role, t.ranges, fit)
            fitted.append((fit, t.role.end - t.role.begin, role.end - role.begin))
            if unprofiled is not None:
                role.reported = unprofiled * 1e3
            work.setdefault(t.step, []).append(Work(r, role, c, ranges, t.names, tuple(t.corrs)))
        if r == inp.ranks[0]:
            inp.deflation = deflate.summary(fitted)
    return work


def cpu_work(inp: Inputs) -> dict[int, list[Work]]:
    """Each timed step of the recorder's timeline, standing on the step as the run's timers measured it (so that
    nothing the phases miss is lost)."""
    timed = inp.rd.timed_steps()
    work: dict[int, list[Work]] = {}
    for r in inp.ranks:
        iv = replay.step_relative(replay.phase_intervals(inp.events[r]))
        for s, role in replay.cpu_role_steps(inp.colls[r], inp.events[r], timed).items():
            ranges = [(p.phase, p.ts, p.end) for p in iv[iv.step == s].itertuples()]
            work.setdefault(s, []).append(Work(r, role, replay.one_step_collectives(inp.colls[r], s), ranges, []))
    for r, ms in inp.step_ms.items():
        for s, rows in work.items():
            for row in rows:
                if row.rank == r and s in ms.index:
                    row.role.reported = float(ms.loc[s]) * 1e3
    return work


RoleOf = Callable[[int, Work], replay.RoleStep]


def replay_steps(inp: Inputs, work: dict[int, list[Work]], model: costmodel.CommModel | None = None,
                 comm_scale: float = 1.0, role_of: RoleOf | None = None) -> list[Replayed]:
    """Every step all simulated ranks have, replayed through the cost model (``model``, default the run's;
    every collective's time times ``comm_scale``; each role as ``role_of(step, row)`` gives it)."""
    model = model or inp.model
    steps = sorted(s for s, rows in work.items() if len(rows) == len(inp.ranks))
    if not steps:
        config = inp.rd.read_config()
        raise ConfigError(f"{inp.rd.path}: no step to replay (steps {config['train']['steps']}, "
                          f"warm-up {config.get('warmup_steps')}, profile window {config.get('profile_window')})")
    out = []
    for s in steps:
        rows = work[s]
        replay.check_same_sequence({row.rank: row.colls for row in rows})
        c = _durations(model, rows[0].colls, inp.world, inp.nodes)
        c["us"] = c["us"] * comm_scale
        roles = [role_of(s, row) if role_of else row.role for row in rows]
        result = replay.replay_step(roles, c["us"].to_numpy(float), model.interference)
        out.append(Replayed(s, c, [row._replace(role=r) for row, r in zip(rows, roles)], result))
    return out


def figures(inp: Inputs, replays: list[Replayed]) -> dict[str, Any]:
    """The predicted step's figures; the optimizer's is the measured one plus what the replay added to it."""
    marks = [{n: (a, b) for n, a, b in rp.rows[0].ranges} for rp in replays]
    fig = replay.step_figures([([row.role for row in rp.rows], rp.result) for rp in replays], replays[0].colls, marks)
    measured = inp.record.optimizer_ms
    added = fig["optimizer_added_ms"]
    fig["optimizer_ms"] = measured + added if measured is not None and added is not None else None
    return fig


def write_traces(inp: Inputs, replays: list[Replayed], cpu: bool) -> list[Any]:
    """Each rank's predicted timeline, written for every rank of its role (the folder is a whole world's traces),
    and the trace analysis of each simulated rank's, read from memory."""
    from golfprof.traces.load import load_trace
    from golfprof.traces.summary import summarize_rank

    role_of = {int(k): v for k, v in inp.sim.role_of.items()}
    summaries = []
    for i, r in enumerate(inp.ranks):
        ranges, items, comms = [], [], []
        at = 0.0
        for rp in replays:
            row = rp.rows[i]
            a, b, cc = _trace_parts(row.role, rp.result.roles[i], row.ranges, row.names, rp.step, rp.colls, rp.result,
                                    at, cpu=cpu)
            ranges, items, comms = ranges + a, items + b, comms + cc
            at += max(tl.step_end for tl in rp.result.roles) + 1.0
        meta = {"variant": inp.record.variant, "comm_model": inp.model.path, "role_of_rank": r}
        for rank in [k for k, v in role_of.items() if v == r] or [r]:
            text = json.dumps(replay.predicted_trace(rank, inp.world, ranges, items, comms, meta))
            path = inp.rd.predicted_trace(rank)
            path.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(path, "wt") as f:
                f.write(text)
            if rank == r:
                summaries.append(summarize_rank(load_trace(path, text=text), r, re.compile(DEFAULT_PHASE_REGEX)))
    return summaries


def document(inp: Inputs, fig: dict[str, Any], summaries: list[Any], steps: list[int], source: str) -> dict[str, Any]:
    """`golfprof analyze`'s JSON for the predicted traces, with ``"predicted": true`` and the prediction block."""
    from golfprof.traces.diagnose import diagnose
    from golfprof.traces.report import to_json
    from golfprof.traces.summary import combine

    run = combine(summaries, re.compile(DEFAULT_PHASE_REGEX))
    notes = [f"rank {r.rank}: {n}" for r in run.ranks for n in r.notes]
    doc = to_json(str(inp.rd.predicted_trace_dir), [run], diagnose(run), notes)
    coll = fig.pop("collectives")
    rec, model = inp.record, inp.model
    return doc | {"predicted": True, "prediction": {
        **fig,
        "world_size": inp.world, "nodes": inp.nodes, "simulated_ranks": inp.ranks, "steps": steps,
        "replayed_from": source, "variant": rec.variant, "device": rec.device,
        "measured_ms_per_step_of_the_simulated_rank": rec.ms_per_step,
        "measured_optimizer_ms_of_the_simulated_rank": rec.optimizer_ms,
        "comm_model": {"path": model.path, "name": model.name, "interference": model.interference,
                       "uncertainty": model.uncertainty},
        "collectives_per_step": [{k: _plain(v) for k, v in row.items()}
                                 for row in coll[COLLECTIVE_KEYS].to_dict("records")],
        "note": "predicted, not measured: collectives are modelled, compute is the simulated rank's own",
    }}


def step_samples(inp: Inputs, replayed: list[int]) -> list[np.ndarray]:
    """Each simulated rank's unprofiled step times (ms), where its timers wrote them: the steps the prediction
    stands on."""
    return [ms.loc[_unprofiled(inp, r, replayed)].to_numpy(float) for r, ms in sorted(inp.step_ms.items())]


def _median(xs: list[float]) -> float:
    return float(np.median(xs)) if xs else 0.0


def _hook_ms(colls: pd.DataFrame) -> float:
    """CPU ms inside DDP's comm hook calls in one step, as the recorder timed them."""
    if not len(colls) or "issued_ns" not in colls:
        return 0.0
    d = colls[colls["source"] == "ddp"]
    return float((d["issued_ns"] - d["issue_ns"]).clip(lower=0).sum()) / 1e6


def _muon_ms(row: Work) -> float:
    """Kernel (GPU) or CPU ms of the items launched inside the Muon phase."""
    return float(row.role.dur[breakdown.in_ranges(row.role.launch, row.ranges, MUON)].sum()) / 1e3


class Sided(NamedTuple):
    """How one side replays: its comm table and how each role is prepared."""

    model: costmodel.CommModel
    role_of: RoleOf | None
    hbm_bw: float | None


def side_figures(inp: Inputs, work: dict[int, list[Work]], sd: Sided, offsets: tuple[float, float]
                 ) -> tuple[list[Replayed], dict[str, Any]]:
    """One side's replays and figures, its interval (the table's ±u and the step spread) and its breakdown."""
    replays = replay_steps(inp, work, sd.model, 1.0, sd.role_of)
    fig = figures(inp, replays)
    u = sd.model.uncertainty
    scales = (max(0.0, 1 - u), 1 + u)  # every collective u shorter, u longer
    ends = [figures(inp, replay_steps(inp, work, sd.model, k, sd.role_of))["ms_per_step"] for k in scales]
    fig["interval_ms"] = intervals.interval(ends[0], ends[1], offsets)
    ddp = bool(len(fig["collectives"])) and bool((fig["collectives"]["source"] == "ddp").any())
    dealt_out = (inp.record.toggles or {}).get("ddp_muon") == "round_robin"
    fig["breakdown"] = breakdown.lines(
        fig["ms_per_step"], fig["collectives"], inp.world, ddp and not dealt_out,
        _median([_muon_ms(rp.rows[0]) for rp in replays]), _median([_hook_ms(rp.rows[0].colls) for rp in replays]),
        sd.hbm_bw)
    return replays, fig


def kernels_of(inp: Inputs, work: dict[int, list[Work]]) -> dict[tuple[int, int], target.Kernels]:
    """Per (step, rank), its kernels' names and FLOPs/bytes from the trace's op shapes."""
    per_rank = {r: shapes.kernel_work(inp.rd.trace(r)) for r in inp.ranks}
    out = {}
    for s, rows in work.items():
        for row in rows:
            f, b = shapes.aligned(per_rank[row.rank], np.asarray(row.corrs, np.int64))
            out[(s, row.rank)] = target.Kernels(list(row.names), f, b)
    return out


class Sides(NamedTuple):
    """--target-gpu's two sides: the GPU the rank was played on and the one predicted for."""

    src: devices.Device
    tgt: devices.Device
    src_side: target.Side
    tgt_side: target.Side
    kernels: dict[tuple[int, int], target.Kernels]

    def sided(self, which: target.Side, rule: str = rescale.SPLIT) -> Sided:
        src, kern = self.src, self.kernels
        return Sided(which.model, lambda s, row: target.on_side(row.role, kern[(s, row.rank)], src, which, rule),
                     which.device.hbm_bw)


def sides(inp: Inputs, work: dict[int, list[Work]], tgt: devices.Device, known: dict[str, devices.Device],
          comm_model: str | Path | None) -> Sides:
    """The source device (the run's recorded GPU in the table), the target, their comm tables and interference."""
    src = devices.source_device(inp.record.device, known)
    cm = str(comm_model) if comm_model else None
    return Sides(src, tgt, target.side(src, cm), target.side(tgt, cm), kernels_of(inp, work))


def phase_attribution(source: list[Replayed], tgt: list[Replayed]) -> list[dict]:
    """Per phase, the target's kernel time against the source's and its share of the step's change (the first
    simulated rank; medians over the steps both sides replayed)."""
    frames = [attribution.by_phase(a.rows[0].role, a.result.roles[0], b.rows[0].role, b.result.roles[0],
                                   a.rows[0].ranges) for a, b in zip(source, tgt) if a.step == b.step]
    return attribution.median_over_steps(frames)


def target_doc(inp: Inputs, work: dict[int, list[Work]], sd: Sides, source: list[Replayed], source_ms: float,
               offsets: tuple[float, float]) -> dict[str, Any]:
    """The target's figures by the split rule; its step spread is the source's, scaled by the predicted steps'
    ratio; the interval also spans the roofline rule's figure (the rescale's own uncertainty); by phase, where
    the difference from the source (``source``: its replays) goes."""
    replays, tf = side_figures(inp, work, sd.sided(sd.tgt_side), offsets)
    ratio = tf["ms_per_step"] / source_ms if source_ms else 1.0
    tf["interval_ms"] = [tf["interval_ms"][i] + offsets[i] * (ratio - 1) for i in (0, 1)]
    alt = figures(inp, replay_steps(inp, work, sd.tgt_side.model, 1.0, sd.sided(sd.tgt_side, rescale.ROOFLINE)
                                    .role_of))["ms_per_step"]
    tf["interval_ms"] = [min(tf["interval_ms"][0], alt), max(tf["interval_ms"][1], alt)]
    rp = replays[0]
    first = (work[rp.step][0].role, sd.kernels[(rp.step, rp.rows[0].rank)], sd.src, sd.tgt)
    return {
        "gpu": sd.tgt.key, "name": sd.tgt.name, "table": sd.tgt.where, "rule": RESCALE_RULE,
        "alternative": {"rule": rescale.RULES[rescale.ROOFLINE], "ms_per_step": alt,
                        "kernels_first_step": target.kernel_summary(*first, rescale.ROOFLINE)},
        "ms_per_step": tf["ms_per_step"], "interval_ms": tf["interval_ms"], "comm_ms": tf["comm_ms"],
        "exposed_comm_ms": tf["exposed_comm_ms"], "breakdown": tf["breakdown"],
        "comm_model": {"path": sd.tgt_side.model.path, "name": sd.tgt_side.model.name,
                       "uncertainty": sd.tgt_side.model.uncertainty},
        "interference": sd.tgt_side.interference.as_dict(),
        "kernels_first_step": target.kernel_summary(*first),
        "by_phase": phase_attribution(source, replays),
    }


RESCALE_RULE = rescale.RULES[rescale.SPLIT] + " (docs/simulated-worlds.md#predicting-for-another-gpu)"


def predict(run_dir: Path, comm_model: str | Path | None = None, nodes: int | None = None,
            target_gpu: str | None = None) -> dict[str, Any]:
    """Replay a simulated run directory; writes and returns the prediction document (with ``target_gpu``, the
    step on that GPU beside the source's)."""
    tgt_known = devices.resolve_target(target_gpu) if target_gpu else None
    inp = read_inputs(run_dir, comm_model, nodes)
    gpu = _gpu_inputs(inp)
    if tgt_known is not None and gpu is None:
        raise ConfigError(f"--target-gpu rescales a GPU rank's kernels: {run_dir} has no GPU trace to replay "
                          f"(device {inp.record.device})")
    work = gpu_work(inp, gpu) if gpu is not None else cpu_work(inp)
    offsets = intervals.spread(step_samples(inp, sorted(work)))
    sd = sides(inp, work, *tgt_known, comm_model) if tgt_known is not None else None
    replays, fig = side_figures(inp, work, sd.sided(sd.src_side) if sd else Sided(inp.model, None, None), offsets)
    fig["anchor"] = anchor_of(inp, [rp.step for rp in replays])
    fig["deflation"] = inp.deflation
    tgt_doc = None
    if sd is not None:
        inp.model = sd.src_side.model
        fig["source_gpu"] = {"key": sd.src.key, "name": sd.src.name,
                             "interference": sd.src_side.interference.as_dict()}
        tgt_doc = target_doc(inp, work, sd, replays, fig["ms_per_step"], offsets)
    summaries = write_traces(inp, replays, cpu=gpu is None)
    doc = document(inp, fig, summaries, [rp.step for rp in replays], CPU_SOURCE if gpu is None else GPU_SOURCE)
    if tgt_doc is not None:
        doc["prediction"]["target"] = tgt_doc
    write_json(inp.rd.predicted, doc)
    return doc


def _trace_parts(rs: replay.RoleStep, tl: replay.RoleTimeline, phase_ranges: list, names: list[str], step: int,
                 colls: pd.DataFrame, rep: replay.StepReplay, at: float, cpu: bool) -> tuple[list, list, list]:
    """CPU ranges, items and collectives of one predicted step placed at `at` µs. On the CPU the
    thread is the compute stream, so its ranges move with the stalls; on a GPU the host runs ahead and
    only the step's end (its synchronize) moves."""
    shift = (lambda t: at + t + replay.delay_at(rs, tl, t)) if cpu else (lambda t: at + t)  # noqa: E731
    ranges = [(n, shift(a), at + tl.step_end if n == replay.STEP_PHASE else shift(b)) for n, a, b in phase_ranges]
    ranges.append((f"ProfilerStep#{step}", at + rs.begin, at + tl.step_end))
    items = []
    for k in range(len(rs.launch)):
        name = names[k] if k < len(names) else f"cpu: {_innermost(phase_ranges, rs.start[k])}"
        launch = at + (tl.start[k] if cpu else rs.launch[k])
        stream = replay.COMPUTE_STREAM if cpu else int(rs.stream[k])
        items.append((name, launch, at + tl.start[k], at + tl.end[k], stream))
    comms = [(colls.iloc[i], shift(rs.issue[i]), at + rep.comm_start[i], at + rep.comm_end[i])
             for i in range(len(colls))]
    return ranges, items, comms


def _innermost(ranges: list, t: float) -> str:
    hits = [(b - a, n) for n, a, b in ranges if a <= t < b]
    return min(hits)[1] if hits else "step"


def _plain(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return None if not np.isfinite(v) else float(v)
    return v
