"""Replay: a simulated rank's measured timeline plus its recorded collectives -> the predicted timeline.

Pure functions over arrays and frames (no files, no torch). The model:

- the compute of one step is a list of items (GPU kernels from the rank's trace, or on the CPU the
  stretches of the step between collective calls), each with the time it was launched, its measured
  start and duration and its stream; an item starts no earlier than it did when measured (its
  launch, or its stream predecessor, held it there), after its stream predecessor's predicted end,
  and after the end of every collective whose result was waited on before it was launched;
- each collective is a modelled kernel on one communication stream (one NCCL group: collectives run
  in the order they are issued); it starts when every simulated role has issued it (its CPU call,
  and the end of the compute launched before the call: the stream event NCCL waits on) and the
  stream is free, and lasts the cost model's time;
- compute that overlaps communication runs slower by the table's interference factor (or, per item,
  ``RoleStep.slow``: predict/interference.py's channel model);
- the step ends when everything it launched has finished (the trainer synchronizes there).

Steps are independent (the sync at the end of each resets the pipeline). With several roles
(``--simulate-rank all``) a collective starts only when the slowest role has issued it, and the
world's step is the slowest role's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from golfprof.traces import metrics


@dataclass
class RoleStep:
    """One role's measured step, µs on one clock. Items sorted by launch; collectives in issue order."""

    launch: np.ndarray
    start: np.ndarray
    dur: np.ndarray
    stream: np.ndarray
    issue: np.ndarray  # per collective: when its call was made
    wait: np.ndarray  # per collective: when its result was first waited on (inf: never in this step)
    end: float  # measured end of the step (≥ every item's end)
    begin: float = 0.0  # measured start of the step
    reported: float | None = None  # the step's length as the run reported it (µs; its timers), if known
    slow: np.ndarray | None = None  # per item: its slowdown under communication (None: the table's one factor)
    last: float | None = None  # measured end of its last item, where start/dur are not the measured ones (rescaled)

    @property
    def measured(self) -> float:
        return self.reported if self.reported is not None else self.end - self.begin


@dataclass
class RoleTimeline:
    start: np.ndarray  # predicted item starts, in the RoleStep's item order
    end: np.ndarray
    ready: np.ndarray  # per collective: when this role had issued it (CPU call and the compute before it)
    step_end: float  # predicted end of the step
    delta: float  # predicted minus measured step length


@dataclass
class StepReplay:
    roles: list[RoleTimeline]
    comm_start: np.ndarray
    comm_end: np.ndarray
    extra: dict = field(default_factory=dict)


def slowed_end(start: float, work: float, busy: list[tuple[float, float]], factor: float) -> float:
    """End of `work` µs of compute begun at `start`, running 1/(1+factor) as fast inside `busy`
    (sorted, disjoint intervals of communication)."""
    t, left = start, work
    if factor <= 0 or left <= 0:
        return t + left
    for a, b in busy:
        if b <= t:
            continue
        if a > t:
            if left <= a - t:
                return t + left
            left -= a - t
            t = a
        can = (b - t) / (1 + factor)
        if left <= can:
            return t + left * (1 + factor)
        left -= can
        t = b
    return t + left


def replay_step(roles: list[RoleStep], durations: np.ndarray, interference: float = 0.0) -> StepReplay:
    """The predicted step of every role; all roles issue the same collectives in the same order."""
    n_coll = len(durations)
    for r in roles:
        if len(r.issue) != n_coll or len(r.wait) != n_coll:
            raise ValueError(f"a role issued {len(r.issue)} collectives, the model has {n_coll}")
    c_start, c_end = np.zeros(n_coll), np.zeros(n_coll)
    busy: list[tuple[float, float]] = []
    state = [_Role(r) for r in roles]
    free = -np.inf
    for i in range(n_coll):
        ready = [s.advance(roles[k].issue[i], c_end, i, busy, interference) for k, s in enumerate(state)]
        for s, t in zip(state, ready):
            s.ready[i] = t
        c_start[i] = max(max(ready), free)
        c_end[i] = free = c_start[i] + durations[i]
        if durations[i] > 0:
            busy.append((c_start[i], c_end[i]))
    out = []
    for r, s in zip(roles, state):
        s.advance(np.inf, c_end, n_coll, busy, interference)
        measured_last = r.last if r.last is not None else max([r.begin, *(r.start + r.dur)])
        pred_last = max([r.begin, *s.end, *c_end])
        step_end = pred_last + (r.end - measured_last)  # the tail after the last item (the sync) as measured
        out.append(RoleTimeline(s.start, s.end, s.ready, step_end, step_end - r.end))
    return StepReplay(out, c_start, c_end)


class _Role:
    def __init__(self, r: RoleStep) -> None:
        self.r = r
        self.k = 0
        n = len(r.launch)
        self.start, self.end = np.zeros(n), np.zeros(n)
        self.ready = np.zeros(len(r.issue))
        self.stream_end: dict[int, float] = {}
        self.max_end = r.begin

    def advance(self, until: float, c_end: np.ndarray, issued: int, busy: list, factor: float) -> float:
        """Predict every item launched before `until`; returns when the role has issued a call at `until`."""
        r = self.r
        while self.k < len(r.launch) and r.launch[self.k] < until:
            k = self.k
            s = max(r.start[k], self.stream_end.get(int(r.stream[k]), -np.inf))
            waited = r.wait[:issued] <= r.launch[k]
            if waited.any():
                s = max(s, float(c_end[:issued][waited].max()))
            e = slowed_end(s, float(r.dur[k]), busy, factor if r.slow is None else float(r.slow[k]))
            self.start[k], self.end[k] = s, e
            self.stream_end[int(r.stream[k])] = e
            self.max_end = max(self.max_end, e)
            self.k += 1
        return max(until, self.max_end) if np.isfinite(until) else self.max_end


# ---- figures ------------------------------------------------------------------------------------

def delay_at(role: RoleStep, tl: RoleTimeline, t: float) -> float:
    """How much later than measured the compute launched before `t` finishes (0 if none)."""
    before = role.launch < t
    if not before.any():
        return 0.0
    return float(tl.end[before].max() - (role.start + role.dur)[before].max())


def exposed(comm_start: np.ndarray, comm_end: np.ndarray, item_start: np.ndarray,
            item_end: np.ndarray) -> tuple[float, float]:
    """(exposed, overlapped) µs of communication against compute, as `golfprof analyze` counts them."""
    if len(comm_start) == 0:
        return 0.0, 0.0
    comm = metrics.merge(comm_start, comm_end)
    comp = metrics.merge(item_start, item_end)
    both = metrics.intersection(comm, comp)
    return metrics.length(comm) - both, both


def exposed_per_collective(comm_start: np.ndarray, comm_end: np.ndarray, item_start: np.ndarray,
                           item_end: np.ndarray) -> np.ndarray:
    comp = metrics.merge(item_start, item_end)
    return np.array([(e - s) - metrics.intersection(metrics.merge(np.array([s]), np.array([e])), comp)
                     for s, e in zip(comm_start, comm_end)])


def step_figures(steps: list[tuple[list[RoleStep], StepReplay]], colls: pd.DataFrame,
                 phase_marks: list[dict[str, tuple[float, float]]] | None = None) -> dict:
    """Per-step figures of the world (the slowest role) and of each role, as medians over steps.

    ``colls`` describes the collectives of one step (op, dtype, bytes, phase, us); ``phase_marks``
    gives, per step, each phase's measured (start, end) on the step's clock: the optimizer phase of the
    slowest role grows by the delay its compute took on inside it (``optimizer_added_ms``).
    """
    world_ms, roles_ms, opt_ms = [], [], []
    exp_ms, comm_ms, over_ms = [], [], []
    per_phase: list[dict[str, float]] = []
    per_coll: list[np.ndarray] = []
    for n, (rsteps, rep) in enumerate(steps):
        lengths = [(rs.measured + tl.delta) / 1e3 for rs, tl in zip(rsteps, rep.roles)]
        world_ms.append(max(lengths))
        roles_ms.append(lengths)
        slow = int(np.argmax(lengths))
        rs, tl = rsteps[slow], rep.roles[slow]
        e, o = exposed(rep.comm_start, rep.comm_end, tl.start, tl.end)
        exp_ms.append(e / 1e3)
        over_ms.append(o / 1e3)
        comm_ms.append((e + o) / 1e3)
        pc = exposed_per_collective(rep.comm_start, rep.comm_end, tl.start, tl.end) / 1e3
        per_coll.append(pc)
        phases = colls["phase"].fillna("").to_numpy() if len(colls) else np.array([])
        per_phase.append({p: float(pc[phases == p].sum()) for p in dict.fromkeys(phases)})
        if phase_marks is not None and n < len(phase_marks) and OPTIMIZER_PHASE in phase_marks[n]:
            a, b = phase_marks[n][OPTIMIZER_PHASE]  # the slowest role's optimizer grows by the delay it took on
            opt_ms.append((delay_at(rs, tl, b) - delay_at(rs, tl, a)) / 1e3)
    med = lambda xs: float(np.median(xs)) if len(xs) else None  # noqa: E731
    comm_total = med(comm_ms)
    coll = colls.assign(modelled_ms=colls["us"] / 1e3 if len(colls) else [],
                        exposed_ms=np.median(np.vstack(per_coll), axis=0) if per_coll and len(colls) else [])
    return {
        "ms_per_step": med(world_ms),
        "ms_per_step_by_role": [med([r[i] for r in roles_ms]) for i in range(len(roles_ms[0]))] if roles_ms else [],
        "optimizer_added_ms": med(opt_ms),
        "comm_ms": comm_total,
        "exposed_comm_ms": med(exp_ms),
        "comm_comp_overlap_pct": 100 * med(over_ms) / comm_total if comm_total else None,
        "exposed_comm_ms_by_phase": {p: med([d.get(p, 0.0) for d in per_phase])
                                     for p in (per_phase[0] if per_phase else {})},
        "collectives": coll,
    }


# ---- inputs: the simulated rank's own timeline -------------------------------------------------

STEP_PHASE = "golfprof/step"
OPTIMIZER_PHASE = "golfprof/step/optimizer"
BACKWARD_PHASE = "golfprof/step/backward"


def phase_intervals(phase_events: pd.DataFrame) -> pd.DataFrame:
    """(phase, step, ts, end) in µs from a recorder's phase events; `step` counts golfprof/step ranges."""
    rows, stack, step = [], [], -1
    for ns, entering, name in phase_events[["ns", "entering", "phase"]].itertuples(index=False):
        if entering:
            if name == STEP_PHASE:
                step += 1
            stack.append((name, ns, step))
        elif stack:
            n, t0, s = stack.pop()
            rows.append({"phase": n, "step": s, "ts": t0 / 1e3, "end": ns / 1e3})
    return pd.DataFrame(rows, columns=["phase", "step", "ts", "end"])


def cpu_role_steps(colls: pd.DataFrame, phase_events: pd.DataFrame, steps: list[int]) -> dict[int, RoleStep]:
    """A CPU rank's steps as RoleSteps: the thread is the compute stream, cut at every collective call
    and wait and at every phase mark, so each stretch of CPU work is one item (launched where it starts)
    inside one phase."""
    iv = phase_intervals(phase_events)
    out = {}
    for s in steps:
        st = iv[(iv.phase == STEP_PHASE) & (iv.step == s)]
        if st.empty:
            continue
        begin, end = float(st.ts.iloc[0]), float(st.end.iloc[0])
        c = colls[colls.step == s].sort_values("seq")
        issue = c.issue_ns.to_numpy(float) / 1e3
        wait = c.wait_ns.to_numpy(float) / 1e3
        wait = np.where(np.isfinite(wait) & (wait <= end), wait, np.inf)
        marks = iv[(iv.step == s) & (iv.phase != STEP_PHASE)]
        cuts = np.r_[begin, issue, wait[np.isfinite(wait)], marks.ts.to_numpy(float), marks.end.to_numpy(float), end]
        cuts = np.unique(np.clip(cuts, begin, end))
        starts, ends = cuts[:-1], cuts[1:]
        # every role's clock starts at its own step start: the roles ran one after the other, and the
        # steps of a real world start together (each ends in collectives every rank takes part in)
        out[s] = RoleStep(launch=starts - begin, start=starts - begin, dur=ends - starts,
                          stream=np.zeros(len(starts), np.int64), issue=issue - begin, wait=wait - begin,
                          end=end - begin, begin=0.0)
    return out


def step_phase_marks(phase_events: pd.DataFrame, steps: list[int]) -> list[dict[str, tuple[float, float]]]:
    """Per step, each phase's (start, end) in µs from the step's start (the clock of cpu_role_steps)."""
    iv = step_relative(phase_intervals(phase_events))
    return [{r.phase: (r.ts, r.end) for r in iv[iv.step == s].itertuples()} for s in steps]


def step_relative(iv: pd.DataFrame) -> pd.DataFrame:
    """Phase intervals on each step's own clock (0 = the step's start)."""
    begin = iv[iv.phase == STEP_PHASE].set_index("step").ts
    off = iv.step.map(begin).fillna(0.0)
    return iv.assign(ts=iv.ts - off, end=iv.end - off)


def one_step_collectives(colls: pd.DataFrame, step: int) -> pd.DataFrame:
    return colls[colls.step == step].sort_values("seq").reset_index(drop=True)


def check_same_sequence(per_role: dict[int, pd.DataFrame]) -> None:
    """Roles of one schedule issue the same collectives; anything else cannot be replayed together."""
    seqs = {r: list(zip(f.op, f.bytes)) for r, f in per_role.items()}
    first = next(iter(seqs.values()))
    for r, s in seqs.items():
        if s != first:
            raise ValueError(f"rank {r} issued a different collective sequence than rank {next(iter(seqs))}")


# ---- output: a Kineto trace of the predicted timeline ---------------------------------------------

_KERNEL_OP = {"all_reduce": "AllReduce", "reduce_scatter": "ReduceScatter", "all_gather": "AllGather",
              "broadcast": "Broadcast", "barrier": "AllReduce"}
_ARG_DTYPE = {"bf16": "BFloat16", "f32": "Float", "f16": "Half", "f64": "Double", "i64": "Long", "i32": "Int",
              "u8": "Byte", "i8": "Char"}
_ELEM = {"bf16": 2, "f16": 2, "f32": 4, "f64": 8, "i64": 8, "i32": 4, "u8": 1, "i8": 1}
COMM_STREAM = 99  # the modelled collectives' stream in a predicted trace
COMPUTE_STREAM = 7


MODELLED = "(modelled by golfprof)"  # ends the kernel name of every modelled collective: how readers tell them


def comm_kernel_name(op: str, dtype: str | None, protocol: str) -> str:
    return f"ncclDevKernel_{_KERNEL_OP.get(op, 'AllReduce')}_Sum_{dtype or 'f32'}_RING_{protocol or 'SIMPLE'}{MODELLED}"


def predicted_trace(rank: int, world: int, cpu_ranges: list[tuple[str, float, float]],
                    items: list[tuple[str, float, float, float, int]],
                    comms: list[tuple[pd.Series, float, float, float]], meta: dict) -> dict:
    """A Kineto document of one predicted rank: CPU ranges (name, ts, end), compute items (name, launch,
    start, end, stream), modelled collectives (record with op/dtype/bytes/protocol, issue, start, end).
    Perfetto and `golfprof analyze` open it like any trace."""
    pid, tid = 1, 1
    ev: list[dict] = [{"name": "process_name", "ph": "M", "ts": 0, "pid": pid, "tid": 0, "args": {"name": "host"}},
                      {"name": "process_name", "ph": "M", "ts": 0, "pid": 0, "tid": 0,
                       "args": {"name": "GPU 0 (predicted)"}}]
    for name, ts, end in cpu_ranges:
        ev.append({"ph": "X", "cat": "user_annotation", "name": name, "pid": pid, "tid": tid, "ts": ts,
                   "dur": max(end - ts, 0.0), "args": {}})
    corr = 0

    def launch(ts: float, name: str, start: float, end: float, stream: int, args: dict) -> None:
        nonlocal corr
        corr += 1
        ev.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": pid, "tid": tid, "ts": ts,
                   "dur": 0.001, "args": {"correlation": corr}})
        ev.append({"ph": "X", "cat": "kernel", "name": name, "pid": 0, "tid": stream, "ts": start,
                   "dur": max(end - start, 0.0), "args": {"device": 0, "stream": stream, "correlation": corr} | args})

    for name, ts, start, end, stream in items:
        launch(ts, name, start, end, stream, {})
    for rec, issue, start, end in comms:
        dtype = rec.get("dtype")
        n = int(rec["bytes"]) // _ELEM.get(dtype, 4) if dtype else 1
        args = {"Collective name": str(rec["op"]).replace("_", ""), "In msg nelems": n, "Out msg nelems": n,
                "Group size": world, "dtype": _ARG_DTYPE.get(dtype, "Float"), "golfprof modelled": True}
        launch(issue, comm_kernel_name(rec["op"], dtype, rec.get("protocol", "")), start, end, COMM_STREAM, args)
    return {"schemaVersion": 1, "deviceProperties": [], "traceName": "golfprof predicted",
            "distributedInfo": {"backend": "nccl", "rank": rank, "world_size": world},
            "golfprof": meta | {"rank": rank, "world_size": world, "predicted": True}, "traceEvents": ev}


# ---- inputs from a GPU rank's Kineto trace ---------------------------------------------------------

COMM_RE = r"^golfprof\.comm#(\d+) "
WAIT_RE = r"^golfprof\.wait#(\d+)$"


@dataclass
class TraceStep:
    """One profiled step of a GPU trace, on the step's clock (0 = its ProfilerStep start)."""

    step: int
    role: RoleStep
    names: list[str]
    seqs: list[int]  # recorder sequence numbers of its collectives, issue order
    corrs: list[int]  # its kernels' correlation ids (their launching ops' shapes: predict/shapes.py)
    ranges: list[tuple[str, float, float]]  # golfprof phase ranges on the CPU


def gpu_role_steps(ev: pd.DataFrame, colls: pd.DataFrame) -> list[TraceStep]:
    """A simulated GPU rank's profiled steps: its compute kernels (less those the fake collectives
    launched to fill their outputs: the data movement a real collective does on its own stream),
    with the recorder's issue and wait ranges as the points each collective is issued and waited on.
    A DDP bucket has no wait range: DDP waits for it as backward ends; nor has a blocking call (``async_op``
    false): the compute stream waits for it where the call returns."""
    import re

    from golfprof.traces import attribute, events, metrics

    st = events.steps(ev)
    g = attribute.launched_work(ev)
    g = g[metrics.kernel_class(g["name"].astype("category")) != metrics.COMM] if len(g) else g
    launch = attribute.launch_time(g) if len(g) else np.zeros(0)
    comm_r = events.cpu_ranges(ev, re.compile(COMM_RE))
    wait_r = events.cpu_ranges(ev, re.compile(WAIT_RE))
    phase_r = events.cpu_ranges(ev, re.compile(r"^golfprof/"))
    seq_of = lambda names, pat: [int(re.match(pat, n).group(1)) for n in names]  # noqa: E731
    comm_r = comm_r.assign(seq=seq_of(comm_r["name"], COMM_RE))
    waits = dict(zip(seq_of(wait_r["name"], WAIT_RE), wait_r["ts"])) if len(wait_r) else {}
    fill = np.zeros(len(g), bool)
    for a, b in zip(comm_r["ts"], comm_r["end"]):
        fill |= (launch >= a) & (launch < b)
    source = colls.set_index("seq")["source"].to_dict() if len(colls) else {}
    blocking = ({int(k) for k, a in colls.set_index("seq")["async_op"].items() if not a}
                if len(colls) and "async_op" in colls else set())  # run directories from before the column: none
    backward = phase_r[phase_r["name"] == BACKWARD_PHASE]
    out = []
    for s, t0, t1 in st[["step", "ts", "end"]].itertuples(index=False):
        mine = (launch >= t0) & (launch < t1) & ~fill
        k = g[mine]
        order = np.argsort(launch[mine], kind="stable")
        c = comm_r[(comm_r["ts"] >= t0) & (comm_r["ts"] < t1)].sort_values("seq")
        issue = c["ts"].to_numpy(float)
        wait = []
        for seq, ts, returned in zip(c["seq"], issue, c["end"].to_numpy(float)):
            w = waits.get(int(seq), np.inf)
            if source.get(int(seq)) == "ddp":
                bw = backward[(backward["ts"] <= ts) & (backward["end"] >= ts)]
                w = float(bw["end"].min()) if len(bw) else np.inf
            elif int(seq) in blocking and not np.isfinite(w):
                w = returned
            wait.append(w if w < t1 else np.inf)
        end = max(float(t1), float(k["end"].max()) if len(k) else float(t1))
        role = RoleStep(launch=launch[mine][order] - t0, start=k["ts"].to_numpy(float)[order] - t0,
                        dur=k["dur"].to_numpy(float)[order], stream=k["stream"].to_numpy()[order],
                        issue=issue - t0, wait=np.asarray(wait, float) - t0, end=end - t0, begin=0.0)
        ph = phase_r[(phase_r["ts"] >= t0) & (phase_r["ts"] < t1)]
        out.append(TraceStep(int(s), role, list(k["name"].astype(str).to_numpy()[order]), [int(x) for x in c["seq"]],
                             [int(x) for x in k["correlation"].to_numpy()[order]],
                             [(n, a - t0, b - t0) for n, a, b in zip(ph["name"], ph["ts"], ph["end"])]))
    return out
