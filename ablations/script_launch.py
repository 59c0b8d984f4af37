"""The launcher side of `golfprof profile`: check, make the run directory, start the ranks, write the summary.

Every bad input is refused here, before any folder or process exists. The ranks are started as `ablate` starts
its own (ablations/launch.py's ``spawn``: a plain process for one rank, ``torchrun --standalone`` for several,
Ctrl-C, SIGTERM and stuck ranks handled there); each runs ablations/script.py. A simulated world plays its ranks
one process after another over the fake backend, then replays what they recorded through the cost model
(golfprof.predict) into ``simulated/predicted.json`` and the predicted traces.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from golfprof.errors import ConfigError
from golfprof.profiler.record import Simulated
from golfprof.profiler.rundir import RunDir, environment, write_json, write_text
from golfprof.profiler.window import Window

from .script_spec import DEFAULT_WARMUP, ScriptSpec, parse_step_fn
from .spec import check_folder

ENTRY = "golfprof.ablations.script"
UNBOUNDED_STEPS = 10**9  # the run's length when --steps is not given: the script's own


@dataclass
class Result:
    """How a profile ended: exit code, the one-line error of a failure, the summary of a complete run."""

    code: int
    run_dir: Path
    error: str | None = None
    summary: dict[str, Any] | None = None


# ---- checks, before anything starts ----------------------------------------------------------------------

def window_of(spec: ScriptSpec) -> tuple[int, Window | None]:
    """The warm-up and profiler window, as `ablate` resolves them (its profile_window), refused when they do not
    fit --steps. Without --steps the run is as long as the script makes it, and the window is not checked."""
    from .run import profile_window

    steps = spec.steps or UNBOUNDED_STEPS
    warmup = spec.warmup_steps if spec.warmup_steps is not None else min(DEFAULT_WARMUP, steps - 1)
    if not 0 <= warmup < steps:
        raise ConfigError(f"--warmup-steps {warmup} must be below --steps {steps}")
    return warmup, profile_window(spec, warmup, steps)  # type: ignore[arg-type]  (it reads .profile only)


def _check_world(spec: ScriptSpec) -> None:
    from .launch import check_nproc

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ:
        raise ConfigError("golfprof profile starts the script's ranks itself: run it outside torchrun, with --nproc N")
    if spec.simulate_world is None:
        check_nproc(spec.nproc, "auto")
        return
    from golfprof.predict import costmodel

    from .simulate import check

    if spec.nproc != 1:
        raise ConfigError("--simulate-world plays its ranks in one process after another: leave --nproc at 1")
    check(spec.simulate_world, spec.simulate_rank, spec.simulate_nodes)
    costmodel.check_covers(spec.comm_model, spec.simulate_world, spec.simulate_nodes)  # before the script runs
    if spec.target_gpu:
        from golfprof.predict.devices import check_run

        check_run(spec.target_gpu, "auto")  # the device table and the GPU too


def check(spec: ScriptSpec) -> tuple[int, Window | None]:
    """Everything a rank would refuse, refused now (exit 2, no folder made); returns the warm-up and window."""
    script = Path(spec.script)
    if not script.is_file():
        raise ConfigError(f"{spec.script}: no such script" if not script.exists() else f"{spec.script}: not a file")
    if spec.step_fn is not None:
        parse_step_fn(spec.step_fn)
    check_folder("--runs-dir", Path(spec.runs_dir))
    _check_world(spec)
    return window_of(spec)


# ---- the run --------------------------------------------------------------------------------------------

def attention_shim(spec: ScriptSpec, source: str) -> dict[str, Any] | None:
    """golfprof's flash_attn_interface for the ranks (inherited through PYTHONPATH), when --attention-shim asks
    for it, or when the script imports flash_attn_interface and FA3 is not installed; what runs, else None."""
    from golfprof.model import attention, fa3_shim

    wanted = spec.attention_shim
    if wanted is None and (attention.fa3_installed() or attention.FA3_MODULE not in source):
        return None
    fa3_shim.install(wanted or fa3_shim.AUTO)
    return fa3_shim.describe()


def _start(spec: ScriptSpec, warmup: int, window: Window | None) -> tuple[RunDir, ScriptSpec, str]:
    """The run directory with the script's copy and config.json; the spec every rank gets."""
    source = Path(spec.script).read_text(encoding="utf-8", errors="replace")
    digest = hashlib.sha256(Path(spec.script).read_bytes()).hexdigest()
    rd = RunDir.new(Path(spec.runs_dir), spec.label)
    env = environment(spec.simulate_world or spec.nproc, "unknown")
    profile = "off" if window is None else f"{window.wait},{window.warmup},{window.active}"
    spec = dataclasses.replace(spec, run_dir=str(rd.path), warmup_steps=warmup, profile=profile, identity={
        "run_id": uuid.uuid4().hex, "run_started": env["started"], "sha256": digest})
    write_text(rd.script_copy(spec.script), source)
    write_config(rd, spec, warmup, window, steps=spec.steps)
    return rd, spec, source


def write_config(rd: RunDir, spec: ScriptSpec, warmup: int, window: Window | None, steps: int | None,
                 tokens_per_step: int | None = None) -> None:
    """config.json of a script run: ``script`` (path, sha256, copy, arguments) and ``train`` (the steps it ran,
    tokens per step) in place of golfprof's model; rewritten at the end with the steps that ran."""
    config = {"preset": "script", "variant": spec.label,
              "script": {"path": str(Path(spec.script).resolve()), "sha256": spec.identity.get("sha256"),
                         "copy": str(rd.script_copy(spec.script).relative_to(rd.path)), "args": spec.args},
              "train": {"steps": steps, "tokens_per_step": tokens_per_step}}
    rd.write_config(config, launch=spec.launch_fields(), warmup_steps=warmup,
                    profile_window=dataclasses.asdict(window) if window else None)


def _spawn(spec: ScriptSpec, rd: RunDir) -> tuple[int, str | None]:
    from .launch import spawn

    code, error = spawn(spec, spec.nproc, entry=ENTRY, name=spec.label)  # type: ignore[arg-type]
    if code != 0 and rd.launch_logs.exists():
        error = f"{error} (traceback and logs: {rd.launch_logs})"
    return code, error


def _finish(rd: RunDir, spec: ScriptSpec, warmup: int, window: Window | None, ranks: list[int],
            env: dict[str, Any], shim: dict[str, Any] | None, simulated: Any = None) -> dict[str, Any]:
    """The run record, written last (config.json rewritten first with the steps that ran); as summary.json holds it."""
    from .script_summary import build

    record = build(rd, spec, env, warmup, window, ranks, shim, simulated)
    write_config(rd, spec, warmup, window, steps=record.steps, tokens_per_step=record.tokens_per_step)
    rd.write_record(record)
    return record.to_dict()


def profile(spec: ScriptSpec) -> Result:
    """Check, run the script on its ranks (or its simulated ones), write the summary; the Result."""
    warmup, window = check(spec)
    shim = attention_shim(spec, Path(spec.script).read_text(encoding="utf-8", errors="replace"))
    rd, spec, _ = _start(spec, warmup, window)
    if spec.simulate_world is not None:
        return _simulated(rd, spec, warmup, window, shim)
    code, error = _spawn(spec, rd)
    if code != 0:
        return Result(code, rd.path, error)
    env = rd.read_env() if rd.env.is_file() else environment(spec.nproc, "none")
    return Result(0, rd.path, summary=_finish(rd, spec, warmup, window, list(range(spec.nproc)), env, shim))


# ---- simulated worlds -----------------------------------------------------------------------------------

SIM_NOTE = ("simulated world: collectives moved no data, so the losses of this run mean nothing; every rank is "
            "assumed to do what the rank played does")


def _simulated(rd: RunDir, spec: ScriptSpec, warmup: int, window: Window | None,
               shim: dict[str, Any] | None) -> Result:
    """Each requested rank in its own process over the fake backend, then the prediction."""
    from golfprof.predict.predict import predict

    from .simulate import check, simulated_backend

    world = spec.simulate_world
    ranks = check(world, spec.simulate_rank, spec.simulate_nodes) or list(range(world))
    for r in ranks:
        code, error = _spawn(dataclasses.replace(spec, play_rank=r), rd)
        if code != 0:
            return Result(code, rd.path, f"simulated rank {r}: {error}")
    env = environment(world, "fake")
    sizes_by_data = any(bool(f["data_dependent"].any()) for f in _collectives(rd, ranks))
    sim = Simulated(world_size=world, nodes=spec.simulate_nodes, ranks=ranks, roles=ranks,
                    role_of={str(k): (k if k in ranks else ranks[0]) for k in range(world)}, backend="fake",
                    stands_for=simulated_backend("auto"), note=SIM_NOTE, extra={"sizes_set_by_data": sizes_by_data})
    write_json(rd.env, env | {"simulated": sim.to_dict()})
    summary = _finish(rd, spec, warmup, window, ranks, env, shim, sim)
    try:
        doc = predict(rd.path, spec.comm_model, spec.simulate_nodes, spec.target_gpu)
    except ValueError as e:  # the played ranks issued different collectives: no one world replays them
        return Result(1, rd.path, f"the prediction failed: {e}", summary=summary)
    return Result(0, rd.path, summary=summary | {"prediction": doc["prediction"]})


def _collectives(rd: RunDir, ranks: list[int]) -> list[Any]:
    import pandas as pd

    return [pd.read_parquet(rd.collectives(r)) for r in ranks if rd.collectives(r).is_file()]
