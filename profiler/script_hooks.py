"""Instruments installed into a foreign training script: its steps and phases, found without edits.

``golfprof profile`` runs a user's script as ``__main__`` with these installed before its first line. They mark
the same phases golfprof's own trainer marks (``golfprof/step/...``, each an NVTX range, a ``record_function``
and a phase timer), so every command reads a script's run like any other:

- ``forward``: the outermost module calls made with gradients on (global module forward hooks); gradient
  accumulation gives several per step. Calls under ``no_grad``/``inference_mode`` are validation, not training:
  between two steps they are marked ``data/eval_forward``, and they never start or end a step;
- ``backward``: ``Tensor.backward`` and ``torch.autograd.backward`` (module calls inside, e.g. activation
  checkpointing's recomputation, are part of it);
- ``optimizer`` and ``optimizer/<Class>``: every ``torch.optim.Optimizer.step`` (the global optimizer step hooks),
  and the ``--step-fn`` method of a plain-class optimizer;
- ``data``: from the end of one step to the first forward (or backward) of the next.

A step ends when the last optimizer step of an iteration returns. How many optimizer steps an iteration makes is
learnt from the first one, which ends when the second iteration's first forward (or backward) begins; from then on
a step ends as its last optimizer step returns, where ``--steps`` stops the script (``StopScript``).

Nothing here runs inside a compiled region: every hook returns at once when ``torch.compiler.is_compiling()``,
so ``torch.compile(fullgraph=True)`` traces them away.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.modules.module as module_hooks
import torch.optim.optimizer as optimizer_hooks

from golfprof.errors import GolfprofWarning

from . import names
from .phases import NULL_CLOCK, Marker, PhaseClock, _NullClock

# torch.compile(module) warns on every compile that global hooks fire once more for the OptimizedModule wrapper;
# only the outermost call counts here, so the extra call changes nothing.
_COMPILE_HOOK_WARNING = r"Using `torch\.compile\(module\)` when there are global hooks"


class StopScript(BaseException):
    """--steps reached: raised from the hook that ended the step, caught around the script. A BaseException, so
    that a script's own ``except Exception`` does not swallow it."""


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def _first_integer_numel(args: tuple) -> int:
    """Tokens of one forward: the elements of its first integer tensor argument (the token ids of a language
    model's ``model(idx, targets)``), 0 when it has none."""
    for a in args:
        if isinstance(a, torch.Tensor) and not a.is_floating_point() and not a.is_complex() and a.dtype != torch.bool:
            return a.numel()
    return 0


@dataclass
class _StepCounts:
    forwards: int = 0
    backwards: int = 0
    optimizer_steps: int = 0  # outermost ones: what ends an iteration
    tokens: int = 0
    losses: list[torch.Tensor] = field(default_factory=list)


class StepTracker:
    """The step and phase state of one script process, driven by the hooks of :func:`installed`.

    ``rows`` holds one dict per completed step (ms between step boundaries, the device synchronized there, and
    what the step did); ``phase_rows`` the phase timers. ``on_first_step`` runs as the first step begins (the
    script has set up its device and process group by then); ``after_step`` after each step with its index.
    """

    def __init__(self, clock: PhaseClock | _NullClock = NULL_CLOCK, marks: bool = True, rank: int = 0,
                 stop_after: int | None = None, cuda: bool = False,
                 now: Callable[[], int] = time.perf_counter_ns) -> None:
        self.clock = clock
        self.marker = Marker(clock, marks=marks)
        self.rank = rank
        self.stop_after = stop_after
        self.cuda = cuda
        self.now = now
        self.on_first_step: list[Callable[[], None]] = []
        self.after_step: list[Callable[[int], None]] = []
        self.samplers: list[Callable[[], dict[str, Any]]] = []  # per-step readings added to the step's row
        self.rows: list[dict[str, Any]] = []
        self.phase_rows: list[dict[str, Any]] = []
        self.notes: list[str] = []  # what the run's summary should say about how its steps were found
        self.per_iteration: int | None = None  # outermost optimizer steps per iteration, learnt from step 0
        self.device: torch.device | None = None  # where the first training forward's parameters live
        self._open: list[Any] = []  # the open phase marks, innermost last
        self._in_step = False
        self._pending = False  # an optimizer step returned since the last forward/backward began
        self._started_ns = 0
        self._counts = _StepCounts()
        self._module_depth = 0
        self._outer: str | None = None  # the outermost module call in flight: "train", "eval" or "skip"
        self._backward_depth = 0
        self._optimizer_depth = 0

    @property
    def steps(self) -> int:
        return len(self.rows)

    def use_device(self, device: torch.device, timers: bool = True) -> None:
        """Time on ``device`` from now on (set as the first step begins, once the script has placed its model):
        CUDA events on a GPU, and the step's end synchronized; host clocks on the CPU."""
        self.cuda = device.type == "cuda"
        self.clock = PhaseClock(device) if timers else NULL_CLOCK
        self.marker.clock = self.clock

    # ---- phase marks ------------------------------------------------------------------------------------
    def _enter(self, name: str) -> None:
        mark = self.marker(name)
        mark.__enter__()
        self._open.append(mark)

    def _leave(self, name: str) -> None:
        """Close ``name`` and anything still open inside it; nothing when it is not open."""
        if not any(m.name == name for m in self._open):
            return
        while self._open:
            mark = self._open.pop()
            mark.__exit__(None, None, None)
            if mark.name == name:
                return

    def _top(self) -> str | None:
        return self._open[-1].name if self._open else None

    # ---- steps ------------------------------------------------------------------------------------------
    def _begin_step(self, with_data: bool, at_ns: int | None = None) -> None:
        if not self.rows and not self._in_step:
            for fn in self.on_first_step:
                fn()
        self._in_step = True
        self._started_ns = self.now() if at_ns is None else at_ns
        self._enter(names.STEP)
        if with_data:
            self._enter(names.DATA)

    def _end_step(self) -> None:
        """Close the step: its marks, the device synchronized, its row; then --steps may stop the script."""
        self._leave(names.STEP)
        if self.cuda:
            torch.cuda.synchronize()
        step = len(self.rows)
        for name, ms in self.clock.collect():
            self.phase_rows.append({"step": step, "rank": self.rank, "phase": name, "ms": ms})
        end = self.now()
        c = self._counts
        loss = float(sum(t.float() for t in c.losses)) if c.losses else float("nan")
        self.rows.append({"step": step, "rank": self.rank, "loss": loss, "ms": (end - self._started_ns) / 1e6,
                          "forwards": c.forwards, "backwards": c.backwards, "optimizer_steps": c.optimizer_steps,
                          "tokens": c.tokens})
        if self.per_iteration is None:
            self.per_iteration = c.optimizer_steps
        self._counts = _StepCounts()
        self._in_step = self._pending = False
        for fn in self.samplers:  # after the step's timer: an NVML reading is golfprof's, not the script's
            self.rows[-1].update(fn())
        for fn in self.after_step:
            fn(step)
        if self.stop_after is not None and len(self.rows) >= self.stop_after:
            raise StopScript
        # the next step starts where this one ended, unless golfprof's own work came between (an NVML reading,
        # the profiler's step and its trace export, which would land in the next step: 1,902 ms against 590)
        self._begin_step(with_data=True, at_ns=end if not (self.samplers or self.after_step) else None)

    def _training_activity(self) -> None:
        """A training forward or backward begins: the iteration before it is over if it stepped an optimizer."""
        if self._pending:
            self._end_step()
        if not self._in_step:
            self._begin_step(with_data=False)
        self._leave(names.DATA)

    # ---- what the hooks report --------------------------------------------------------------------------
    def forward_begin(self, module: torch.nn.Module, args: tuple) -> None:
        """An outermost module call. Training: gradients on and a parameter to train (a transform module run on
        the batch is not a forward); validation: gradients off; a call inside backward (checkpointing's
        recomputation) or inside an optimizer step belongs to that phase."""
        if self._backward_depth or self._optimizer_depth:
            self._outer = "skip"
        elif torch.is_grad_enabled():
            trained = next((p for p in module.parameters() if p.requires_grad), None)
            if trained is None:
                self._outer = "skip"
                return
            if self.device is None:
                self.device = trained.device
            self._training_activity()
            self._counts.forwards += 1
            self._counts.tokens += _first_integer_numel(args)
            self._outer = "train"
            self._enter(names.FORWARD)
        else:
            self._outer = "eval"
            if self._in_step:
                self._enter(names.EVAL_FORWARD)

    def forward_end(self) -> None:
        kind, self._outer = self._outer, None
        if kind == "train":
            self._leave(names.FORWARD)
        elif kind == "eval":
            self._leave(names.EVAL_FORWARD)

    def backward_begin(self, tensors: Any) -> None:
        self._training_activity()
        self._counts.backwards += 1
        if isinstance(tensors, torch.Tensor) and tensors.numel() == 1:
            self._counts.losses.append(tensors.detach())
        self._enter(names.BACKWARD)

    def backward_end(self) -> None:
        self._leave(names.BACKWARD)

    def optimizer_begin(self, cls_name: str) -> None:
        outermost = self._optimizer_depth == 0 and not self._backward_depth
        if outermost:
            if not self._in_step:
                self._begin_step(with_data=False)
            self._leave(names.DATA)
            self._enter(names.OPTIMIZER)
        self._optimizer_depth += 1
        self._enter(names.optimizer_step(cls_name))

    def optimizer_end(self, cls_name: str) -> None:
        """An optimizer step returned. The outermost ones count towards the iteration's; one inside backward (an
        optimizer run from gradient hooks) or inside another optimizer's step only marks its phase."""
        self._leave(names.optimizer_step(cls_name))
        self._optimizer_depth = max(0, self._optimizer_depth - 1)
        self._pending = True
        if self._optimizer_depth or self._backward_depth:
            return
        self._leave(names.OPTIMIZER)
        self._counts.optimizer_steps += 1
        if self.per_iteration and self._counts.optimizer_steps >= self.per_iteration:
            self._end_step()

    def finish(self) -> None:
        """The script is done (or stopped): close what is open; a step begun but not ended is no step."""
        while self._open:
            self._open.pop().__exit__(None, None, None)
        self.clock.collect()
        self._in_step = False

    # ---- the hook bodies (torch calls these) ------------------------------------------------------------
    def module_pre(self, module: torch.nn.Module, args: tuple) -> None:
        if _compiling():
            return
        if self._module_depth == 0:
            self.forward_begin(module, args)
        self._module_depth += 1

    def module_post(self, module: torch.nn.Module, args: tuple, output: Any) -> None:
        if _compiling():
            return
        self._module_depth = max(0, self._module_depth - 1)
        if self._module_depth == 0:
            self.forward_end()

    def optimizer_pre(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        if not _compiling():
            self.optimizer_begin(type(optimizer).__name__)

    def optimizer_post(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        if not _compiling():
            self.optimizer_end(type(optimizer).__name__)

    def wrap_backward(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``Tensor.backward`` / ``torch.autograd.backward``, marked once however they nest."""

        @functools.wraps(fn)
        def backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
            if _compiling() or self._backward_depth:
                return fn(tensors, *args, **kwargs)
            self.backward_begin(tensors)
            self._backward_depth += 1
            try:
                return fn(tensors, *args, **kwargs)
            finally:
                self._backward_depth -= 1
                self.backward_end()

        return backward

    def wrap_step_fn(self, fn: Callable[..., Any], cls_name: str) -> Callable[..., Any]:
        """A plain-class optimizer's step method (--step-fn), marked as torch.optim's steps are."""

        @functools.wraps(fn)
        def step(*args: Any, **kwargs: Any) -> Any:
            if _compiling():
                return fn(*args, **kwargs)
            self.optimizer_begin(cls_name)
            out = fn(*args, **kwargs)
            self.optimizer_end(cls_name)
            return out

        return step


# ---- --step-fn: a plain class's method, wrapped as its class is created -----------------------------------

@dataclass
class StepFn:
    """``[module:]Class.method``; ``module`` None matches the class wherever it is defined (the script is
    ``__main__``)."""

    module: str | None
    cls: str
    method: str
    wrapped: list[str] = field(default_factory=list)  # the classes wrapped, as module.qualname

    @property
    def text(self) -> str:
        return (f"{self.module}:" if self.module else "") + f"{self.cls}.{self.method}"

    def matches(self, cls: type) -> bool:
        """By qualified name, or its tail (a class a function defines: ``main.<locals>.Plain`` is ``Plain``)."""
        q = cls.__qualname__
        named = q == self.cls or q.endswith(f".{self.cls}")
        return named and (self.module is None or cls.__module__ == self.module)

    def wrap(self, cls: type, tracker: StepTracker) -> None:
        fn = getattr(cls, self.method, None)
        if not callable(fn):
            warnings.warn(f"--step-fn {self.text}: {cls.__module__}.{cls.__qualname__} has no method "
                          f"{self.method!r}; its steps are not marked", GolfprofWarning, stacklevel=2)
            return
        setattr(cls, self.method, tracker.wrap_step_fn(fn, cls.__name__))
        self.wrapped.append(f"{cls.__module__}.{cls.__qualname__}")


@contextlib.contextmanager
def _step_fns_wrapped(step_fns: list[StepFn], tracker: StepTracker) -> Iterator[None]:
    """Wrap each --step-fn method as its class statement runs (``builtins.__build_class__``), or now when its
    module is imported already."""
    for s in step_fns:
        if s.module is not None and s.module in sys.modules:
            owner: Any = sys.modules[s.module]
            for part in s.cls.split("."):
                owner = getattr(owner, part, None)
            if isinstance(owner, type):
                s.wrap(owner, tracker)
    original = builtins.__build_class__

    def build_class(func: Callable, name: str, *bases: Any, **kwargs: Any) -> Any:
        cls = original(func, name, *bases, **kwargs)
        if isinstance(cls, type):
            for s in step_fns:
                if s.matches(cls):
                    s.wrap(cls, tracker)
        return cls

    builtins.__build_class__ = build_class
    try:
        yield
    finally:
        builtins.__build_class__ = original


@contextlib.contextmanager
def installed(tracker: StepTracker, step_fns: list[StepFn] = ()) -> Iterator[StepTracker]:  # type: ignore[assignment]
    """Every hook of the tracker, installed for the duration; undone on exit."""
    handles = [
        module_hooks.register_module_forward_pre_hook(tracker.module_pre),
        module_hooks.register_module_forward_hook(tracker.module_post, always_call=True),
        optimizer_hooks.register_optimizer_step_pre_hook(tracker.optimizer_pre),
        optimizer_hooks.register_optimizer_step_post_hook(tracker.optimizer_post),
    ]
    tensor_backward, autograd_backward = torch.Tensor.backward, torch.autograd.backward
    torch.Tensor.backward = tracker.wrap_backward(tensor_backward)  # type: ignore[method-assign]
    torch.autograd.backward = tracker.wrap_backward(autograd_backward)
    try:
        with warnings.catch_warnings(), _step_fns_wrapped(list(step_fns), tracker):
            warnings.filterwarnings("ignore", message=_COMPILE_HOOK_WARNING)
            yield tracker
    finally:
        torch.Tensor.backward = tensor_backward  # type: ignore[method-assign]
        torch.autograd.backward = autograd_backward
        for h in handles:
            h.remove()


# ---- DDP: its bucketed all-reduces, seen through a comm hook ----------------------------------------------

@contextlib.contextmanager
def ddp_recording(recorder: Any) -> Iterator[None]:
    """Every DistributedDataParallel built while installed gets the recorder's comm hook (``Recorder.ddp_hook``:
    the default all-reduce, recorded; on the fake backend the bucket itself). DDP takes one hook only, so a
    script's own ``register_comm_hook`` is kept and called from ours: what it issues through ``torch.distributed``
    is recorded by the recorder's wrappers, and not a second time here."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    init, register = DDP.__init__, DDP.register_comm_hook

    def __init__(self: DDP, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._golfprof_hook = None

        def hook(state, bucket):  # noqa: ANN001, ANN202 - DDP inspects a comm hook's annotations
            theirs = self._golfprof_hook
            if theirs is not None:
                return theirs[1](theirs[0], bucket)
            return recorder.ddp_hook(state, bucket)

        register(self, None, hook)

    def register_comm_hook(self: DDP, state: object, hook: Callable) -> None:
        if hasattr(self, "_golfprof_hook") and self._golfprof_hook is None:
            self._golfprof_hook = (state, hook)
            return
        register(self, state, hook)

    DDP.__init__, DDP.register_comm_hook = __init__, register_comm_hook  # type: ignore[method-assign]
    try:
        yield
    finally:
        DDP.__init__, DDP.register_comm_hook = init, register  # type: ignore[method-assign]
