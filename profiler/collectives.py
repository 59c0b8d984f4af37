"""Collective recorder: every torch.distributed call a step makes, with the point it is waited on.

Wraps the ``torch.distributed`` names the schedules call (the module attribute, so code calling
``dist.all_reduce`` goes through it, and a deprecated name that forwards to its replacement inside
torch is recorded once) and offers a DDP comm hook, so that DDP's bucketed all-reduces are seen too.
Works on any backend: on the fake one it is how a simulated rank's communication is known; on gloo
or NCCL it records what a real rank issued, so the two can be compared.

Times are ``time.perf_counter_ns`` (the phase timers' CPU clock). Each collective also opens a
``record_function`` range, ``golfprof.comm#<seq> <op>`` around its issue and ``golfprof.wait#<seq>``
around its wait, so the replay finds both points in a Kineto trace on the trace's own clock.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import pandas as pd
import torch
import torch.distributed as dist

from . import phases

COMM_RANGE = "golfprof.comm#"
WAIT_RANGE = "golfprof.wait#"

# torch.distributed name -> (op, which argument holds the message: the larger buffer, as nccl-tests counts it)
_WRAPPED: dict[str, tuple[str, str]] = {
    "all_reduce": ("all_reduce", "tensor"),
    "reduce_scatter_single": ("reduce_scatter", "input"),
    "reduce_scatter_tensor": ("reduce_scatter", "input"),
    "all_gather_single": ("all_gather", "output"),
    "all_gather_into_tensor": ("all_gather", "output"),
    "broadcast": ("broadcast", "tensor"),
    "barrier": ("barrier", ""),
    # the list forms and the rest of the collectives a foreign script may issue (golfprof profile)
    "all_gather": ("all_gather", "tensor_list"),
    "reduce_scatter": ("reduce_scatter", "input_list"),
    "all_to_all_single": ("all_to_all", "input"),
    "all_to_all": ("all_to_all", "input_tensor_list"),
    "reduce": ("reduce", "tensor"),
}
# Calls whose sizes are set by the data (the split sizes the peers send): a simulated rank cannot know them.
_DATA_DEPENDENT = {"all_to_all_single": ("output_split_sizes", "input_split_sizes"), "all_to_all": ()}
_DTYPES = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16", torch.float64: "f64",
           torch.int64: "i64", torch.int32: "i32", torch.uint8: "u8", torch.int8: "i8"}

COLUMNS = ["seq", "op", "dtype", "bytes", "group_size", "phase", "step", "source", "async_op",
           "issue_ns", "issued_ns", "wait_ns", "waited_ns", "data_dependent"]


@dataclass
class Collective:
    seq: int
    op: str
    dtype: str | None
    bytes: int
    group_size: int
    phase: str | None  # innermost golfprof phase open when it was issued
    step: int | None  # index of the step (counted from the recorder's start), None outside steps
    source: str  # "dist" (a torch.distributed call) or "ddp" (a DDP bucket through the comm hook)
    async_op: bool
    issue_ns: int
    issued_ns: int
    wait_ns: int | None = None  # when its result was first waited on (DDP: the end of its backward)
    waited_ns: int | None = None
    data_dependent: bool = False  # its size is set by data the peers hold (all_to_all): this rank's share only


Message = "torch.Tensor | list[torch.Tensor] | None"


def _argument_getter(fn: Callable, which: str) -> Callable[[tuple, dict], Any]:
    """Reads one argument from a call's arguments; the signature is bound once, not per call."""
    import inspect

    names = list(inspect.signature(fn).parameters)
    name = next(n for n in (which, f"{which}_tensor") if n in names)
    pos = names.index(name)
    return lambda args, kwargs: args[pos] if len(args) > pos else kwargs.get(name)


def _message_getter(fn: Callable, which: str) -> Callable[[tuple, dict], Message]:
    """Reads the message (a tensor, or the list of a list-form collective) from a call's arguments."""
    if not which:
        return lambda args, kwargs: None
    arg = _argument_getter(fn, which)

    def get(args: tuple, kwargs: dict) -> Message:
        t = arg(args, kwargs)
        if isinstance(t, torch.Tensor):
            return t
        if isinstance(t, (list, tuple)) and t and all(isinstance(x, torch.Tensor) for x in t):
            return list(t)
        return None

    return get


def _dtype_and_bytes(t: Message) -> tuple[str | None, int]:
    parts = [t] if isinstance(t, torch.Tensor) else (t or [])
    if not parts:
        return None, 0
    return _DTYPES.get(parts[0].dtype, str(parts[0].dtype)), sum(x.numel() * x.element_size() for x in parts)


def _data_dependence(fn: Callable, name: str) -> Callable[[tuple, dict], bool]:
    """Whether one call's size depends on data: any split-size argument given (all_to_all: always)."""
    if name not in _DATA_DEPENDENT:
        return lambda args, kwargs: False
    getters = [_argument_getter(fn, a) for a in _DATA_DEPENDENT[name]]
    if not getters:
        return lambda args, kwargs: True
    return lambda args, kwargs: any(g(args, kwargs) is not None for g in getters)


_ORIGINALS: dict[str, Callable] = {}


class _Waited:
    """A work handle whose first ``wait`` is recorded; everything else is the handle's own."""

    def __init__(self, work: Any, rec: "Recorder", c: Collective) -> None:
        self._work, self._rec, self._c = work, rec, c

    def wait(self, *args: Any, **kwargs: Any) -> Any:
        first = self._c.wait_ns is None
        if first:
            self._c.wait_ns = self._rec.clock()
        with torch.profiler.record_function(f"{WAIT_RANGE}{self._c.seq}"):
            out = self._work.wait(*args, **kwargs)
        if first:
            self._c.waited_ns = self._rec.clock()
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._work, name)


class Recorder:
    """Records collectives while ``installed``; ``frame()`` gives them as a data frame.

    ``phase_events`` keeps (ns, entering, phase) of every phase mark, so a CPU timeline of the
    steps (their boundaries and phases) lives beside the collectives on the same clock.
    """

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.clock = clock
        self.records: list[Collective] = []
        self.phase_events: list[tuple[int, bool, str]] = []
        self._stack: list[str] = []
        self._step = -1
        self._local = threading.local()
        self._ddp_pending: list[Collective] = []

    # ---- phases ----------------------------------------------------------------------------
    def _on_phase(self, entering: bool, name: str) -> None:
        now = self.clock()
        self.phase_events.append((now, entering, name))
        if entering:
            self._stack.append(name)
            if name == phases.STEP:
                self._step += 1
            return
        if self._stack and self._stack[-1] == name:
            self._stack.pop()
        if name == phases.BACKWARD:  # DDP waits for its buckets as backward finishes
            for c in self._ddp_pending:
                c.wait_ns = c.waited_ns = now
            self._ddp_pending.clear()

    def _where(self) -> tuple[str | None, int | None]:
        in_step = phases.STEP in self._stack
        return (self._stack[-1] if self._stack else None), (self._step if in_step else None)

    # ---- collectives -----------------------------------------------------------------------
    def _new(self, op: str, t: Message, group_size: int, source: str, async_op: bool,
             issue_ns: int, data_dependent: bool = False) -> Collective:
        phase, step = self._where()
        dtype, size = _dtype_and_bytes(t)
        c = Collective(seq=len(self.records), op=op, dtype=dtype, bytes=size, group_size=group_size,
                       phase=phase, step=step, source=source, async_op=async_op, issue_ns=issue_ns,
                       issued_ns=issue_ns, data_dependent=data_dependent)
        self.records.append(c)
        return c

    def _wrap(self, name: str, fn: Callable) -> Callable:
        op, which = _WRAPPED[name]
        message = _message_getter(fn, which)
        group_of = _argument_getter(fn, "group")
        async_of = _argument_getter(fn, "async_op")
        depends = _data_dependence(fn, name)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            # a wrapped name calling another: count it once; traced by torch.compile: nothing of ours in the graph
            if getattr(self._local, "inside", False) or torch.compiler.is_compiling():
                return fn(*args, **kwargs)
            t0 = self.clock()
            group = dist.get_world_size(group_of(args, kwargs)) if dist.is_initialized() else 1
            c = self._new(op, message(args, kwargs), group, "dist", bool(async_of(args, kwargs)), t0,
                          depends(args, kwargs))
            self._local.inside = True
            try:
                with torch.profiler.record_function(f"{COMM_RANGE}{c.seq} {op}"):
                    work = fn(*args, **kwargs)
            finally:
                self._local.inside = False
            c.issued_ns = self.clock()
            if work is None or not c.async_op:
                c.wait_ns = c.waited_ns = c.issued_ns
                return work
            return _Waited(work, self, c)

        recorded.__wrapped__ = fn  # type: ignore[attr-defined]
        return recorded

    def ddp_hook(self, state, bucket):  # noqa: ANN001, ANN201 - DDP rejects string annotations here
        """DDP comm hook: the default hook's arithmetic (divide by the world, all-reduce SUM), recorded.

        On the fake backend the bucket is returned as the completed result: the reducer needs a
        future holding a tensor of the bucket's shape, which the fake backend's work does not give.
        """
        buf = bucket.buffer()
        world = dist.get_world_size()
        t0 = self.clock()
        c = self._new("all_reduce", buf, world, "ddp", True, t0)
        self._ddp_pending.append(c)
        with torch.profiler.record_function(f"{COMM_RANGE}{c.seq} all_reduce"):
            if dist.get_backend() == "fake":
                fut: torch.futures.Future = torch.futures.Future()
                fut.set_result(buf)
            else:
                buf.div_(world)
                work = _ORIGINALS.get("all_reduce", dist.all_reduce)(buf, async_op=True)
                fut = work.get_future().then(lambda f: f.value()[0])
        c.issued_ns = self.clock()
        return fut

    @contextlib.contextmanager
    def installed(self) -> Iterator["Recorder"]:
        """Wrap the torch.distributed names and listen to the phase marks; undone on exit."""
        saved = {n: getattr(dist, n) for n in _WRAPPED if hasattr(dist, n)}
        _ORIGINALS.update(saved)
        for n, fn in saved.items():
            setattr(dist, n, self._wrap(n, fn))
        phases.LISTENERS.append(self._on_phase)
        try:
            yield self
        finally:
            phases.LISTENERS.remove(self._on_phase)
            for n, fn in saved.items():
                setattr(dist, n, fn)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(c) for c in self.records], columns=COLUMNS)

    def phase_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.phase_events, columns=["ns", "entering", "phase"])


def register_ddp_hook(ddp: torch.nn.parallel.DistributedDataParallel, rec: Recorder) -> None:
    ddp.register_comm_hook(None, rec.ddp_hook)


def sequence(frame: pd.DataFrame) -> list[tuple[str, str | None, int]]:
    """(op, dtype, bytes) in issue order: what two runs of one schedule must agree on."""
    return [(r.op, r.dtype, int(r.bytes)) for r in frame.itertuples()]
