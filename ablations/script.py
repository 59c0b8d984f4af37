"""One rank of `golfprof profile`: the user's script run as ``__main__``, instrumented, into the run directory.

``python -m golfprof.ablations.script SPEC.json`` (torchrun starts one per rank; one process for one rank or a
simulated one). The instruments (profiler/script_hooks.py, the collective recorder, the DDP comm hook, the
profiler window) are installed before the script's first line; ``sys.argv`` is ``[SCRIPT, *ARGS]`` and the
script's folder is first on ``sys.path``, as ``python SCRIPT ARGS`` would have them.

At ``--steps N`` the hook that ends step N raises ``StopScript``: every rank stops at that step boundary, the
profiler and timers are flushed, the files written, the process group destroyed, and the rank exits 0 whatever
the script would have done next. A script that ends by itself is as fine. One that raises (or exits non-zero)
keeps its traceback on the rank's stderr, which the launcher keeps in ``launch_logs/``; the rank exits 1 with a
``golfprof-error:`` line naming where the script failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import torch
import torch.distributed as dist

from golfprof.errors import guard_stdout, show_warnings
from golfprof.profiler import gpustate
from golfprof.profiler.collectives import Recorder
from golfprof.profiler.phases import NULL_CLOCK
from golfprof.profiler.rundir import RunDir, environment, write_json, write_parquet
from golfprof.profiler.script_hooks import StepFn, StepTracker, StopScript, ddp_recording, installed
from golfprof.profiler.window import Window

from .ownership import guard_rank, hold_shared
from .script_spec import ScriptSpec, parse_step_fn

STEP_COLUMNS = ["step", "rank", "loss", "ms", "forwards", "backwards", "optimizer_steps", "tokens"]
PHASE_COLUMNS = ["step", "rank", "phase", "ms"]


@dataclasses.dataclass
class Outcome:
    how: str  # "stopped" (at --steps), "finished" (ended by itself) or "failed"
    error: BaseException | None = None


def run_script(script: str, args: list[str]) -> Outcome:
    """``python SCRIPT ARGS`` in this process: runpy as ``__main__``; StopScript and SystemExit(0) are endings."""
    path = str(Path(script).resolve())
    saved_argv = sys.argv
    sys.argv = [script, *args]
    sys.path.insert(0, str(Path(path).parent))  # the rank exits after the script: nothing to restore
    try:
        runpy.run_path(path, run_name="__main__")
        return Outcome("finished")
    except StopScript:
        return Outcome("stopped")
    except SystemExit as e:
        return Outcome("finished") if e.code in (0, None) else Outcome("failed", e)
    except Exception as e:  # the script's own error; its traceback goes to this rank's stderr
        return Outcome("failed", e)
    finally:
        sys.argv = saved_argv


def failure_line(script: str, error: BaseException) -> str:
    """One line for the launcher: what the script raised and where in the script (its innermost frame there)."""
    if isinstance(error, SystemExit):
        return f"the script exited with code {error.code}"
    mine = Path(script).resolve()
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).resolve() == mine]
    where = f" at {Path(script).name}:{frames[-1].lineno}" if frames else ""
    message = f"{type(error).__name__}: {error}".splitlines()[0]
    return f"the script raised {message}{where}"


class _Window:
    """The torch.profiler window, started as the first step begins (the script's process group exists by then,
    so Kineto records the rank and world) and stepped at every step boundary."""

    def __init__(self, spec: ScriptSpec, rank: int, world: int) -> None:
        self.spec, self.rank, self.world = spec, rank, world
        self.window = Window.parse(spec.profile)
        self.prof: Any = None

    def start(self, cuda: bool) -> None:
        if self.window is None:
            return
        from golfprof.profiler.kineto import make_profiler

        ident = self.spec.identity
        meta = {"variant": self.spec.label, "rank": self.rank, "world_size": self.world,
                "config": {"script": self.spec.script, "sha256": ident.get("sha256"), "args": self.spec.args},
                "window": dataclasses.asdict(self.window), "run_id": ident.get("run_id"),
                "run_started": ident.get("run_started")}
        s = self.spec
        self.prof = make_profiler(self.window, Path(s.run_dir), self.rank, meta, cuda=cuda,
                                  shapes=s.record_shapes, stacks=s.with_stack, memory=s.profile_memory)
        self.prof.start()

    def step(self, step: int) -> None:
        if self.prof is not None:
            self.prof.step()

    def stop(self) -> None:
        if self.prof is not None:
            self.prof.stop()
            self.prof = None


def script_device(model_device: torch.device | None) -> torch.device:
    """The device the script trains on: its first training forward's parameters' (made the current CUDA device,
    so that the phase timers' events are recorded on its stream), else the current CUDA device once the script
    has used CUDA, else the CPU."""
    if model_device is not None and model_device.type == "cuda":
        if model_device.index is not None and model_device.index != torch.cuda.current_device():
            torch.cuda.set_device(model_device)
        return torch.device("cuda", torch.cuda.current_device())
    if model_device is None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _attention_used() -> str | None:
    """What ``flash_attn_interface`` the script imported: golfprof's shim (its label), FA3 itself, or none."""
    module = sys.modules.get("flash_attn_interface")
    if module is None:
        return None
    return getattr(module, "GOLFPROF_SHIM", "fa3")


def _backend() -> str:
    return dist.get_backend() if dist.is_available() and dist.is_initialized() else "none"


@contextlib.contextmanager
def _instruments(spec: ScriptSpec, rank: int, tracker: StepTracker, rec: Recorder) -> Iterator[None]:
    """The simulated world (when asked for), the recorder, the DDP hook and the step tracker, in that order."""
    step_fns = [StepFn(*parse_step_fn(spec.step_fn))] if spec.step_fn else []
    with contextlib.ExitStack() as stack:
        if spec.simulate_world is not None:
            from .script_world import simulated_world

            stack.enter_context(simulated_world(spec.simulate_world, rank, spec.simulate_nodes))
        stack.enter_context(rec.installed())
        stack.enter_context(ddp_recording(rec))
        stack.enter_context(installed(tracker, step_fns))
        yield
        tracker.notes.extend(f"--step-fn {s.text}: no class {s.cls} was defined, so no step of it was marked"
                             for s in step_fns if not s.wrapped)


def _write(rd: RunDir, spec: ScriptSpec, rank: int, tracker: StepTracker, rec: Recorder, report: dict) -> None:
    """This rank's files: steps, phase timers, the recorded collectives (and phase events when simulated), and
    its report (script/rank<r>.json), written last."""
    read = [c for c in gpustate.COLUMNS if any(c in r for r in tracker.rows)]  # GPU state where NVML answered
    rd.write_steps(rank, pd.DataFrame(tracker.rows, columns=STEP_COLUMNS + read))
    rd.write_phases(rank, pd.DataFrame(tracker.phase_rows, columns=PHASE_COLUMNS))
    if spec.simulate_world is not None:
        write_parquet(rd.collectives(rank), rec.frame())
        write_parquet(rd.phase_events(rank), rec.phase_frame())
    else:
        write_parquet(rd.recorded_collectives(rank), rec.frame())
    write_json(rd.script_rank(rank), report)


def run_rank(spec: ScriptSpec, rank: int) -> Outcome:
    """Run the script as ``rank`` and write this rank's files; the outcome (raises nothing the script raised)."""
    os.environ.update(spec.env)
    rd = RunDir(spec.run_dir)
    held = hold_shared(rd.lock)
    world = spec.simulate_world or int(os.environ.get("WORLD_SIZE", "1"))
    tracker = StepTracker(NULL_CLOCK, marks=spec.marks, rank=rank, stop_after=spec.steps)
    window = _Window(spec, rank, world)
    seen: dict[str, Any] = {"device": torch.device("cpu")}

    def first_step() -> None:
        seen["backend"] = _backend()
        seen["device"] = device = script_device(tracker.device)
        tracker.use_device(device, spec.timers)
        sampler = gpustate.GpuSampler(device)  # one NVML reading per step; nothing without NVML
        if sampler.active:
            tracker.samplers.append(sampler.sample)
        if rank == 0 and spec.simulate_world is None:
            rd.write_env(environment(world, seen["backend"]))
        window.start(cuda=device.type == "cuda")

    tracker.on_first_step.append(first_step)
    tracker.after_step.append(window.step)
    rec = Recorder()
    with _instruments(spec, rank, tracker, rec):
        outcome = run_script(spec.script, spec.args)
        tracker.finish()
        window.stop()
    from .run import peak_memory_mb

    report = {"rank": rank, "world_size": world, "outcome": outcome.how, "steps": tracker.steps,
              "optimizer_steps_per_iteration": tracker.per_iteration, "backend": seen.get("backend", _backend()),
              "device": str(seen["device"]), "peak_memory_mb": peak_memory_mb(seen["device"]),
              "attention": _attention_used(), "notes": tracker.notes,
              "error": failure_line(spec.script, outcome.error) if outcome.error is not None else None}
    _write(rd, spec, rank, tracker, rec, report)
    _teardown(ok=outcome.how != "failed")
    held.close()
    return outcome


def _teardown(ok: bool) -> None:
    """The script's process group, if it left one: destroyed the launcher's way (a barrier first when every rank
    got here normally: all stopped at the same step, or all finished)."""
    if dist.is_available() and dist.is_initialized():
        from .launch import shutdown_process_group

        shutdown_process_group(ok)


def _rank_of(spec: ScriptSpec) -> int:
    return spec.play_rank if spec.play_rank is not None else int(os.environ.get("RANK", "0"))


def main(argv: list[str]) -> int:
    guard_rank()  # first: a rank must not outlive its job (kill -9 of golfprof, or of torchrun)
    show_warnings()
    guard_stdout()
    spec = ScriptSpec(**json.loads(Path(argv[1]).read_text()))
    rank = _rank_of(spec)
    from . import watchdog

    watchdog.start_heartbeat(0 if spec.play_rank is not None else rank)  # the launcher watches process 0 of 1
    try:
        outcome = run_rank(spec, rank)
    except Exception as e:  # golfprof's own failure around the script: one line, the traceback in the log
        traceback.print_exc()
        print(f"golfprof-error: rank {rank}: {type(e).__name__}: {e}".splitlines()[0], file=sys.stderr, flush=True)
        return 1
    if outcome.how != "failed":
        return 0
    if not isinstance(outcome.error, SystemExit):
        traceback.print_exception(outcome.error)
    print(f"golfprof-error: rank {rank}: {failure_line(spec.script, outcome.error)}", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the script's threads and exit handlers (it was stopped mid-run) must not keep the rank alive
