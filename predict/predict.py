"""Prediction of a simulated run directory: reads what its fake ranks recorded, replays it through the
cost model (predict/replay.py, pure) and writes the prediction beside the run's own files:

- ``simulated/predicted.json``: `golfprof analyze`'s JSON schema for the predicted traces, with
  ``"predicted": true`` and a ``prediction`` block (ms/step, optimizer ms, exposed communication
  per phase, overlap %, every collective with its modelled time, the table and its sources);
- ``simulated/trace/rank<R>.pt.trace.json.gz``: each simulated rank's predicted timeline, the
  modelled collectives on their own stream, for Perfetto.

A CUDA run is replayed from its Kineto trace (GPU kernels, launch times, the recorder's
``golfprof.comm#``/``golfprof.wait#`` ranges); a CPU run from the recorder's own timeline.
"""

from __future__ import annotations

import gzip
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from golfprof.errors import ConfigError
from golfprof.profiler.names import DEFAULT_PHASE_REGEX
from golfprof.profiler.rundir import TRACE_SUFFIX, RunDir, write_json

from . import costmodel, replay


def _read_rank_files(run_dir: Path) -> tuple[dict[int, pd.DataFrame], dict[int, pd.DataFrame]]:
    rd = RunDir(run_dir)
    ranks = rd.simulated_ranks()
    if not ranks:
        raise ConfigError(f"{run_dir}: not a simulated run (no collectives recorded under {rd.simulated_dir.name}/)")
    colls = {r: pd.read_parquet(rd.collectives(r)) for r in ranks}
    events = {r: pd.read_parquet(rd.phase_events(r)) for r in ranks if rd.phase_events(r).is_file()}
    return colls, events


def _median_timed_ms(rd: RunDir, rank: int) -> float | None:
    if not rd.steps(rank).is_file():
        return None
    ms = pd.read_parquet(rd.steps(rank)).set_index("step").ms
    timed = [s for s in rd.timed_steps() if s in ms.index]
    return float(ms.loc[timed].median()) if timed else None


def _durations(model: costmodel.CommModel, colls: pd.DataFrame, world: int, nodes: int) -> pd.DataFrame:
    est = [model.time(r.op, r.bytes, world, nodes) for r in colls.itertuples()]
    return colls.assign(us=[e.us for e in est], protocol=[e.protocol for e in est], link=[e.link for e in est])


def _analysis(doc: dict, path: Path, rank: int) -> Any:
    from golfprof.traces.load import load_trace
    from golfprof.traces.summary import summarize_rank

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / f"rank{rank}{TRACE_SUFFIX}"  # plain JSON: load_trace reads either
        raw.write_text(json.dumps(doc))
        s = summarize_rank(load_trace(raw), rank, re.compile(DEFAULT_PHASE_REGEX))
    s.path = path
    return s


def _gpu_inputs(rd: RunDir, ranks: list[int], colls: dict[int, pd.DataFrame]) -> dict[int, list] | None:
    """Per rank, the profiled steps of its Kineto trace when every simulated rank has one with GPU kernels."""
    from golfprof.traces.load import load_trace

    out = {}
    for r in ranks:
        path = rd.trace(r)
        if not path.is_file():
            return None
        steps = replay.gpu_role_steps(load_trace(path).events, colls[r])
        if not steps or not any(len(t.role.launch) for t in steps):
            return None
        out[r] = steps
    return out


def predict(run_dir: Path, comm_model: str | Path | None = None, nodes: int | None = None) -> dict[str, Any]:
    """Replay a simulated run directory; writes and returns the prediction document."""
    rd = RunDir(run_dir)
    summary = rd.read_record()
    sim = summary.simulated
    if sim is None:
        raise ConfigError(f"{run_dir}: summary.json has no 'simulated' block: not a simulated run")
    config = rd.read_config()
    world = sim.world_size
    nodes = int(nodes or sim.nodes or 1)
    model = costmodel.load(comm_model or costmodel.default_for_device(summary.device))
    colls, events = _read_rank_files(rd.path)
    ranks = sorted(colls)
    gpu = _gpu_inputs(rd, ranks, colls) if "cpu" not in str(summary.device or "cpu") else None
    # per step: [(rank, RoleStep, its collectives, CPU ranges, item names)]
    work: dict[int, list[tuple[int, replay.RoleStep, pd.DataFrame, list, list]]] = {}
    if gpu is not None:
        source = "kineto trace (profiled steps), on the rank's median unprofiled step"
        for r in ranks:
            unprofiled = _median_timed_ms(rd, r)
            for t in gpu[r]:
                c = colls[r].set_index("seq").loc[t.seqs].reset_index() if t.seqs else colls[r].iloc[0:0]
                if unprofiled is not None:  # the profiler slows the steps it records; the delays are the trace's
                    t.role.reported = unprofiled * 1e3
                work.setdefault(t.step, []).append((r, t.role, c, t.ranges, t.names))
    else:
        source = "recorder timeline (timed steps)"
        iv = {r: replay.step_relative(replay.phase_intervals(events[r])) for r in ranks}
        for r in ranks:
            for s, role in replay.cpu_role_steps(colls[r], events[r], rd.timed_steps()).items():
                ranges = [(p.phase, p.ts, p.end) for p in iv[r][iv[r].step == s].itertuples()]
                work.setdefault(s, []).append((r, role, replay.one_step_collectives(colls[r], s), ranges, []))
        for r in ranks:  # the step as the run's timers measured it, so that nothing the phases miss is lost
            if rd.steps(r).is_file():
                ms = pd.read_parquet(rd.steps(r)).set_index("step").ms
                for s, rows in work.items():
                    for rank, role, *_ in rows:
                        if rank == r and s in ms.index:
                            role.reported = float(ms.loc[s]) * 1e3
    steps = sorted(s for s, rows in work.items() if len(rows) == len(ranks))
    if not steps:
        raise ConfigError(f"{run_dir}: no step to replay (steps {config['train']['steps']}, "
                          f"warm-up {config.get('warmup_steps')}, profile window {config.get('profile_window')})")
    replays, marks = [], []
    for s in steps:
        rows = work[s]
        replay.check_same_sequence({r: c for r, _, c, _, _ in rows})
        c = _durations(model, rows[0][2], world, nodes)
        rsteps = [role for _, role, _, _, _ in rows]
        replays.append((s, c, rows, replay.replay_step(rsteps, c["us"].to_numpy(float), model.interference)))
        marks.append({n: (a, b) for n, a, b in rows[0][3]})
    fig = replay.step_figures([([row[1] for row in rows], rep) for _, _, rows, rep in replays], replays[0][1], marks)
    measured_opt = summary.optimizer_ms
    fig["optimizer_ms"] = (measured_opt + fig["optimizer_added_ms"]
                           if measured_opt is not None and fig["optimizer_added_ms"] is not None else None)

    role_of = {int(k): v for k, v in sim.role_of.items()}
    summaries = []
    for i, r in enumerate(ranks):
        ranges, items, comms = [], [], []
        at = 0.0
        for s, c, rows, rep in replays:
            _, role, _, phase_ranges, names = rows[i]
            a, b, cc = _trace_parts(role, rep.roles[i], phase_ranges, names, s, c, rep, at, cpu=gpu is None)
            ranges, items, comms = ranges + a, items + b, comms + cc
            at += max(tl.step_end for tl in rep.roles) + 1.0
        meta = {"variant": summary.variant, "comm_model": model.path, "role_of_rank": r}
        # every rank of a simulated role gets its role's timeline, so the folder is a whole world's traces
        for rank in [k for k, v in role_of.items() if v == r] or [r]:
            doc = replay.predicted_trace(rank, world, ranges, items, comms, meta)
            path = rd.predicted_trace(rank)
            path.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(path, "wt") as f:
                json.dump(doc, f)
            if rank == r:
                summaries.append(_analysis(doc, path, r))

    from golfprof.traces.diagnose import diagnose
    from golfprof.traces.report import to_json
    from golfprof.traces.summary import combine

    run = combine(summaries, re.compile(DEFAULT_PHASE_REGEX))
    notes = [f"rank {r.rank}: {n}" for r in run.ranks for n in r.notes]
    doc = to_json(str(rd.predicted_trace_dir), [run], diagnose(run), notes)
    coll = fig.pop("collectives")
    doc |= {"predicted": True, "prediction": {
        **fig,
        "world_size": world, "nodes": nodes, "simulated_ranks": ranks, "steps": steps, "replayed_from": source,
        "variant": summary.variant, "device": summary.device,
        "measured_ms_per_step_of_the_simulated_rank": summary.ms_per_step,
        "measured_optimizer_ms_of_the_simulated_rank": measured_opt,
        "comm_model": {"path": model.path, "name": model.name, "interference": model.interference},
        "collectives_per_step": [{k: _plain(v) for k, v in row.items()} for row in
                                 coll[["seq", "op", "dtype", "bytes", "group_size", "phase", "source", "us",
                                       "protocol", "link", "exposed_ms"]].to_dict("records")],
        "note": "predicted, not measured: collectives are modelled, compute is the simulated rank's own",
    }}
    write_json(rd.predicted, doc)
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
