"""The run record: summary.json as one typed dataclass, its producers and readers agreeing by construction.

golfprof's trainer (ablations/run.py), the simulated world (ablations/simulate.py) and a profiled foreign
script each build a :class:`RunRecord`; ``RunDir.write_record`` writes it and ``RunDir.read_record`` reads
it back, in today's form or any older one (fields a file lacks are ``None``; keys this version does not
know are kept in ``extra`` and written back). The schema section of docs/run-directory.md is generated
from these classes (:func:`schema_markdown`), and a test keeps the two equal. Torch-free.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

SCHEMA_BEGIN = "<!-- summary-schema:begin -->"
SCHEMA_END = "<!-- summary-schema:end -->"
GOLFPROF = "golfprof"  # Source.kind: golfprof's own trainer
SCRIPT = "script"  # Source.kind: a foreign training script run under `golfprof profile`


def _f(meaning: str, default: Any = None, factory: Any = None) -> Any:
    """A field with its meaning: the doc's schema table says what the field holds from this text."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": meaning})
    return field(default=default, metadata={"help": meaning})


@dataclass
class _Part:
    """A part of the record: keys a file holds that this version does not know survive a read and a write."""

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False,
                                  metadata={"help": "keys this version does not know, kept as read"})

    def to_dict(self) -> dict[str, Any]:
        """The part as summary.json holds it: every field (``None`` as ``null``), then the keys kept in ``extra``."""
        return _to_json(self)


@dataclass
class Source(_Part):
    """What produced the run: golfprof's trainer, or a script profiled from outside."""

    kind: Literal["golfprof", "script"] = _f("`golfprof` (golfprof's trainer) or `script` (a foreign script "
                                             "run under `golfprof profile`); runs before this field: `golfprof`",
                                             GOLFPROF)
    script: str | None = _f("the script's path as given (`script` runs)")
    script_sha256: str | None = _f("SHA-256 of the script's bytes when it ran (`script` runs)")


@dataclass
class Efficiency(_Part):
    """Throughput and MFU (ablations/run.py:efficiency computes them)."""

    tokens_per_s: float | None = _f("tokens per second over the world")
    tokens_per_s_per_gpu: float | None = _f("tokens per second per rank")
    flops_per_token: float | None = _f("model FLOPs per token (forward and backward)")
    model_tflops_per_gpu: float | None = _f("model TFLOP/s per rank")
    ortho_gflop_per_rank: float | None = _f("orthogonalization GFLOP per step on one rank")
    optimizer_tflops: float | None = _f("orthogonalization TFLOP/s over the optimizer phase")
    ceiling_tflops: float | None = _f("the matmul ceiling measured on this device (TFLOP/s)")
    ceiling_dtype: str | None = _f("dtype the ceiling was measured in")
    datasheet_tflops: float | None = _f("the device's datasheet dense TFLOP/s, where known")
    mfu_pct: float | None = _f("model FLOP utilization, % of the measured ceiling")
    mfu_datasheet_pct: float | None = _f("model FLOP utilization, % of the datasheet figure")
    optimizer_pct_of_ceiling: float | None = _f("the optimizer's TFLOP/s, % of the measured ceiling")


@dataclass
class RankRecord(_Part):
    """One rank's own figures, over its timed steps."""

    ms_per_step: float | None = _f("median wall ms per timed step")
    optimizer_ms: float | None = _f("median optimizer-phase ms per timed step")
    forward_backward_ms: float | None = _f("median forward + backward ms per timed step")
    phase_ms: dict[str, float] = _f("phase name → median ms per timed step", factory=dict)
    final_loss: float | None = _f("last step's training loss")
    timed_steps: int | None = _f("how many steps the medians use")
    rank: int | None = _f("global rank")
    peak_memory_mb: float | None = _f("peak allocated device memory (CPU: peak RSS), MiB")
    wall_s: float | None = _f("wall seconds of the training loop")
    ortho_kernel: str | None = _f("the orthogonalization kernel that ran (`torch`, `triton`)")
    attention: str | None = _f("the attention kernel that ran")
    kernels: dict[str, str] | None = _f("the MLP, cross-entropy and FP8 paths that ran (`mlp_kernel`, `ce_kernel`, "
                                        "`fp8`: the fused ones fall back without a GPU)")
    gpu_state: dict[str, Any] | None = _f("this rank's GPU over the run (NVML, profiler/gpustate.py: median clocks and "
                                          "power, throttled steps and their reasons); `null` without NVML")
    window_check: dict[str, Any] | None = _f("this rank's profiled steps against its other timed steps "
                                             "(traces/typical.py); `null` when unprofiled or too short to say")


@dataclass
class Simulated(_Part):
    """A simulated-world run (ablations/simulate.py): which world its fake ranks stood for."""

    world_size: int = field(metadata={"help": "the simulated world size (required)"})
    nodes: int = _f("nodes the world spans", 1)
    ranks: list[int] = _f("the ranks played, in the order they ran", factory=list)
    roles: list[int] | None = _f("one rank per distinct role (what `--simulate-rank all` plays)")
    role_of: dict[str, int] = _f("every rank (as a string) → the played rank whose work it repeats", factory=dict)
    backend: str | None = _f("the process group's backend (`fake`)")
    stands_for: str | None = _f("the backend the world stands for (`nccl`, `gloo`)")
    note: str | None = _f("what the losses of the run mean")


@dataclass
class RunRecord(_Part):
    """The run's headline figures (rank 0's medians over the timed steps) and every rank's own.

    Figures that could not be measured are ``None`` (``null``): a profiled foreign script has no
    optimizer phase or toggles, a run that did not evaluate has no validation loss.
    """

    source: Source = _f("what produced the run", factory=Source)
    variant: str | None = _f("the variant name (a foreign script: its name)")
    preset: str | None = _f("the model preset")
    device: str | None = _f("GPU name, or `cpu: <processor> x<cores>`")
    torch: str | None = _f("torch version")
    world_size: int | None = _f("ranks in the run")
    command: str | None = _f("the command line")
    steps: int | None = _f("optimizer steps run")
    warmup_steps: int | None = _f("leading steps left out of the medians")
    tokens_per_step: int | None = _f("global tokens per optimizer step")
    ms_per_step: float | None = _f("median wall ms per timed step (rank 0)")
    optimizer_ms: float | None = _f("median optimizer-phase ms per timed step (rank 0)")
    forward_backward_ms: float | None = _f("median forward + backward ms per timed step (rank 0)")
    tokens_per_s: float | None = _f("tokens per second over the world")
    tokens_per_s_per_gpu: float | None = _f("tokens per second per rank")
    model_tflops_per_gpu: float | None = _f("model TFLOP/s per rank")
    mfu_pct: float | None = _f("model FLOP utilization, % of the measured matmul ceiling")
    efficiency: Efficiency | None = _f("throughput and MFU in full (object below)")
    peak_memory_mb: float | None = _f("largest peak memory over the ranks, MiB")
    final_loss: float | None = _f("last step's training loss (rank 0)")
    val_loss: float | None = _f("validation loss after the final step (nats per token)")
    val_bits_per_token: float | None = _f("the same in bits per token")
    val_tokens: float | None = _f("validation tokens scored")
    val_bpb: float | None = _f("validation bits per byte (with `--sp-model`)")
    phase_ms: dict[str, float] = _f("phase name → median ms per timed step (rank 0)", factory=dict)
    toggles: dict[str, Any] | None = _f("the toggles, as in config.json")
    ortho_kernel_used: str | None = _f("the orthogonalization kernel that ran (triton falls back to torch "
                                       "without a GPU)")
    attention_used: str | None = _f("the attention kernel that ran (flash, cudnn, fa3 fall back to sdpa "
                                    "without a GPU)")
    kernels_used: dict[str, str] | None = _f("the MLP, cross-entropy and FP8 paths that ran, as `mlp_kernel`, "
                                             "`ce_kernel`, `fp8` (the fused kernels and FP8 fall back to "
                                             "`inductor` / `off` where they cannot run)")
    ranks: list[RankRecord] = _f("one object per rank (below)", factory=list)
    simulated: Simulated | None = _f("a simulated-world run's world (object below); `null` for a real run")
    gpu_state: dict[str, Any] | None = _f("the GPU over the run: rank 0's median SM/memory clocks and power, "
                                          "`throttled_steps` summed over the ranks, `throttle_reasons`, "
                                          "`throttled_ranks`; `null` without NVML (profiler/gpustate.py)")
    window_check: dict[str, Any] | None = _f("rank 0's profiled window against its other timed steps: medians, "
                                             "`verdict`, `window_vs_rest_pct` and the `phase` that made the "
                                             "difference (traces/typical.py); `null` when unprofiled")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """summary.json's object, any version; raises ValueError naming the first mistyped field."""
        return _from_json(cls, data, "")

    @property
    def is_simulated(self) -> bool:
        return self.simulated is not None


# ---- JSON <-> dataclasses, checked against the annotations ------------------------------------------------

@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fields(cls: type) -> list[dataclasses.Field]:
    """The record's own fields, ``extra`` (the keys it does not know) left out."""
    return [f for f in dataclasses.fields(cls) if f.name != "extra"]


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        out = {f.name: _to_json(getattr(value, f.name)) for f in _fields(type(value))}
        return out | {k: v for k, v in value.extra.items() if k not in out}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def _from_json(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'summary'}: expected an object, got {type(data).__name__}")
    hints, known, kwargs = _hints(cls), {f.name for f in _fields(cls)}, {}
    for f in _fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(hints[f.name], data[f.name], f"{where}{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where}{f.name}: missing")
    extra = {k: v for k, v in data.items() if k not in known}
    return cls(**kwargs, extra=extra)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _coerce(tp: Any, v: Any, where: str) -> Any:
    """``v`` as annotation ``tp`` says, or ValueError: a hand-edited file is bad input, not a crash later."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, v, where)
    if tp is Any:
        return v
    if origin is Literal:
        if v not in args:
            raise ValueError(f"{where}: expected one of {', '.join(map(str, args))}, got {v!r}")
        return v
    if dataclasses.is_dataclass(tp):
        return _from_json(tp, v, f"{where}.")
    if origin is list:
        if not isinstance(v, list):
            raise ValueError(f"{where}: expected a list, got {type(v).__name__}")
        return [_coerce(args[0], x, f"{where}[{i}]") for i, x in enumerate(v)]
    if origin is dict:
        if not isinstance(v, dict):
            raise ValueError(f"{where}: expected an object, got {type(v).__name__}")
        return {str(k): _coerce(args[1], x, f"{where}.{k}") for k, x in v.items()}
    return _scalar(tp, v, where)


def _scalar(tp: type, v: Any, where: str) -> Any:
    if tp is float and _is_number(v):
        return float(v)
    if tp is int and _is_number(v) and float(v).is_integer():
        return int(v)
    if tp in (str, bool) and isinstance(v, tp):
        return v
    raise ValueError(f"{where}: expected {_type_words(tp)}, got {v!r}")


# ---- the schema, as docs/run-directory.md shows it --------------------------------------------------------

def _type_words(tp: Any) -> str:
    """An annotation in the doc's words: ``float | None`` -> "number or null"."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        words = [_type_words(a) for a in args if a is not type(None)]
        return " or ".join(words + (["null"] if type(None) in args else []))
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type_words(args[0])}s"
    if origin is dict:
        return f"object of {_type_words(args[1])}"
    if dataclasses.is_dataclass(tp):
        return f"`{tp.__name__}` object"
    return {float: "number", int: "integer", str: "string", bool: "boolean", Any: "any"}.get(tp, str(tp))


def _table(cls: type) -> list[str]:
    hints = _hints(cls)
    lines = ["| key | type | meaning |", "|---|---|---|"]
    lines += [f"| `{f.name}` | {_type_words(hints[f.name])} | {f.metadata['help']} |" for f in _fields(cls)]
    return lines


SCHEMA_PARTS = (RunRecord, Source, Efficiency, RankRecord, Simulated)


def schema_markdown() -> str:
    """The schema section of docs/run-directory.md: one table per class of the record (a test keeps them equal)."""
    out: list[str] = []
    for cls in SCHEMA_PARTS:
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        name = f"`{cls.__name__}`" + (" (the whole file)" if cls is RunRecord else "")
        out += [f"{name}: {doc}", "", *_table(cls), ""]
    return "\n".join(out).rstrip()
