"""ScriptSpec: what `golfprof profile -- SCRIPT [ARGS...]` runs, and how each rank of it is instrumented. Torch-free.

The options shared with ``train``/``ablate`` (the profiler window, the runs folder, the simulated world, ...) are
RunSpec's own fields, taken over with their declarations (``_as_in_run_spec``); the rest are declared here once.
golfprof/options.py turns the fields made with ``option`` into the command's options.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from golfprof.errors import ConfigError
from golfprof.model import fa3_shim
from golfprof.model.config import check_ranges, option

from .spec import RunSpec

_NAME = r"[A-Za-z_]\w*"
_STEP_FN = re.compile(rf"^(?:(?P<module>{_NAME}(?:\.{_NAME})*):)?(?P<cls>{_NAME}(?:\.{_NAME})*)\.(?P<method>{_NAME})$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _as_in_run_spec(name: str) -> Any:
    """RunSpec's field ``name`` as it is declared there: the same flag, help, default and range."""
    f = RunSpec.__dataclass_fields__[name]
    return field(default=f.default, metadata=f.metadata)


@dataclass
class ScriptSpec:
    """Everything a rank of a profiled script needs; serialised to JSON for the spawned ranks."""

    script: str
    args: list[str] = field(default_factory=list)
    nproc: int = option(1, "Processes, as torchrun's --nproc-per-node: one per GPU with NCCL, gloo on the CPU.", min=1)
    steps: int | None = option(None, "Stop every rank after N training steps (default: the script's own end).", min=1)
    name: str | None = option(None, "Run name: the run folder's suffix and the summary's variant (default: the "
                                    "script's file name).")
    step_fn: str | None = option(None, "A plain-class optimizer step that ends a training step, as Class.method or "
                                       "module:Class.method (torch.optim optimizers are found without it).")
    attention_shim: str | None = option(
        None, f"Give the script golfprof's flash_attn_interface over PyTorch attention, with this kernel: "
        f"{', '.join((fa3_shim.AUTO, *fa3_shim.KINDS))} ({fa3_shim.AUTO}: the fastest that agrees with fp32 math). "
        "Default: auto where FA3 is not installed and the script imports flash_attn_interface.")
    runs_dir: str = _as_in_run_spec("runs_dir")
    warmup_steps: int | None = _as_in_run_spec("warmup_steps")
    profile: str = _as_in_run_spec("profile")
    record_shapes: bool = _as_in_run_spec("record_shapes")
    with_stack: bool = _as_in_run_spec("with_stack")
    profile_memory: bool = _as_in_run_spec("profile_memory")
    marks: bool = _as_in_run_spec("marks")
    timers: bool = _as_in_run_spec("timers")
    simulate_world: int | None = _as_in_run_spec("simulate_world")
    simulate_rank: str = _as_in_run_spec("simulate_rank")
    simulate_nodes: int = _as_in_run_spec("simulate_nodes")
    comm_model: str | None = _as_in_run_spec("comm_model")
    target_gpu: str | None = _as_in_run_spec("target_gpu")
    stall_timeout: float = _as_in_run_spec("stall_timeout")
    env: dict[str, str] = field(default_factory=dict)  # --env K=V, set in every rank before the script starts
    run_dir: str | None = None
    identity: dict[str, Any] = field(default_factory=dict)  # run_id, run_started, sha256: the same in every rank
    play_rank: int | None = None  # a simulated world: the rank this process plays
    command: str = ""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.target_gpu is not None and self.simulate_world is None:  # it rescales a prediction: there is none
            raise ConfigError("--target-gpu predicts a simulated world's step on another GPU: give --simulate-world N")
        shims = (fa3_shim.AUTO, *fa3_shim.KINDS)
        if self.attention_shim is not None and self.attention_shim not in shims:
            raise ConfigError(f"--attention-shim {self.attention_shim!r}: valid: {', '.join(shims)}")

    @property
    def label(self) -> str:
        """The run's name: --name, else the script's file name without .py."""
        return self.name or Path(self.script).stem

    def launch_fields(self) -> dict[str, Any]:
        """config.json's ``launch`` block: every field but the script itself (stored under ``script``)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("script", "args")}


DEFAULT_WARMUP = 3  # leading steps left out of the medians when --warmup-steps is not given (compiled scripts)


def parse_step_fn(text: str) -> tuple[str | None, str, str]:
    """'Class.method' or 'module:Class.method' -> (module or None, class qualname, method)."""
    m = _STEP_FN.match(text.strip())
    if m is None:
        raise ConfigError(f"--step-fn {text!r}: expected Class.method or module:Class.method "
                          "(e.g. NorMuonAndAdam.step)")
    return m.group("module"), m.group("cls"), m.group("method")


def parse_env(items: list[str]) -> dict[str, str]:
    """--env K=V (repeatable) -> {K: V}; a later K wins."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _ENV_NAME.match(key):
            raise ConfigError(f"--env {item!r}: expected NAME=VALUE (NAME of letters, digits and _)")
        out[key] = value
    return out
