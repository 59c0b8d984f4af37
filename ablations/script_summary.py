"""The run record (summary.json) of a profiled script, from the files its ranks wrote; the launcher writes it last.

The same record a golfprof trainer run has (profiler/record.py), so that `regress`, `baseline`, `dashboard` and
`diff` read it unchanged: medians over the timed steps (after the warm-up, outside the profiler window), per-phase
medians, every rank's figures, ``source`` naming the script and its sha256. Beside them (the record's ``extra``):
``script`` (its copy, arguments, how it ended), ``collectives_per_step`` and ``notes``. What a foreign script does
not tell (its model's FLOPs, hence MFU) is null, never a guess; tokens per step are counted from the forwards'
first integer argument (the token ids), and the record says so.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any

import pandas as pd

from golfprof.profiler import gpustate
from golfprof.profiler.record import Efficiency, RankRecord, RunRecord, Simulated, Source
from golfprof.profiler.rundir import RunDir, read_json
from golfprof.profiler.window import Window, timed_steps
from golfprof.traces.recorded import per_step
from golfprof.traces.typical import run_window_check

from .script_spec import ScriptSpec

PRESET = "script"  # a script run's preset: its model is the script's own
TOKENS_SOURCE = ("elements of the first integer tensor argument of each training forward, summed over the "
                 "step's forwards and the ranks")
NO_STEPS_NOTE = ("no training step was seen: no torch.optim optimizer stepped; name a plain-class optimizer's step "
                 "with --step-fn Class.method")
DATA_SIZED_NOTE = ("collectives whose sizes are set by data (all_to_all) were issued: their recorded sizes are this "
                   "rank's own, which a simulated world cannot know for the others")


def _clean(v: Any) -> Any:
    """JSON without NaN (a step without a scalar loss): a missing figure is null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def _median(column: pd.Series) -> float | None:
    return float(statistics.median(column.tolist())) if len(column) else None


def rank_record(rd: RunDir, rank: int, warmup: int, window: Window | None) -> RankRecord:
    """One rank's medians over its timed steps, with what the rank reported (script/rank<r>.json)."""
    from .run import rank_record as medians

    report = read_json(rd.script_rank(rank))
    steps, phases = rd.steps_frame(rank), rd.phases_frame(rank)
    timed = timed_steps(len(steps), warmup, window, export_step=True)  # the script's step pays the export
    counted = steps[steps.step.isin(timed)]
    base = medians(steps, phases, timed)
    exported = steps.step == window.end if window is not None else steps.step < 0  # not a step like the others
    check = run_window_check(steps[~exported], phases[~phases.step.isin(steps.step[exported])], warmup, window)
    extra = {"steps": len(steps), "tokens_per_step": _median(counted.tokens),
             "forwards_per_step": _median(counted.forwards), "backwards_per_step": _median(counted.backwards),
             **{k: report.get(k) for k in ("outcome", "backend", "optimizer_steps_per_iteration", "notes", "error")}}
    return dataclasses.replace(base, rank=rank, peak_memory_mb=report.get("peak_memory_mb"),
                               attention=report.get("attention"), final_loss=_clean(base.final_loss),
                               gpu_state=gpustate.summarize(steps, set(timed)), window_check=_clean(check),
                               extra=_clean(extra))


def global_tokens(ranks: list[RankRecord], world: int, simulated: bool) -> int | None:
    """Tokens a step of the whole world consumes: every rank's own (one simulated rank's, times the world)."""
    counts = [r.extra.get("tokens_per_step") for r in ranks]
    if not counts or not all(counts):
        return None
    return int(counts[0] * world) if simulated and len(ranks) == 1 else int(sum(counts))


def recorded_frame(rd: RunDir, rank: int, simulated: bool) -> pd.DataFrame | None:
    path = rd.collectives(rank) if simulated else rd.recorded_collectives(rank)
    return pd.read_parquet(path) if path.is_file() else None


def script_block(rd: RunDir, spec: ScriptSpec, head: RankRecord) -> dict[str, Any]:
    """What ran and how it ended: stopped at --steps, or ended by itself after so many steps."""
    stopped = head.extra.get("outcome") == "stopped"
    ended = (f"stopped by golfprof after --steps {spec.steps}" if stopped
             else f"ended by itself after {head.extra.get('steps')} training steps")
    return {"path": str(Path(spec.script).resolve()), "copy": str(rd.script_copy(spec.script).relative_to(rd.path)),
            "args": spec.args, "outcome": head.extra.get("outcome"), "ended": ended,
            "optimizer_steps_per_iteration": head.extra.get("optimizer_steps_per_iteration"), "step_fn": spec.step_fn}


def build(rd: RunDir, spec: ScriptSpec, env: dict[str, Any], warmup: int, window: Window | None, ranks: list[int],
          shim: dict[str, Any] | None = None, simulated: Simulated | None = None) -> RunRecord:
    """The run record: rank ``ranks[0]``'s figures are the headline, every rank's are kept."""
    records = [rank_record(rd, r, warmup, window) for r in ranks]
    head, world = records[0], int(env["world_size"])
    tokens = global_tokens(records, world, simulated is not None)
    ms = head.ms_per_step
    tokens_per_s = tokens / (ms / 1e3) if tokens and ms else None
    frame = recorded_frame(rd, ranks[0], simulated is not None)
    timed = sorted(timed_steps(int(head.extra["steps"]), warmup, window, export_step=True))
    notes = list(dict.fromkeys(n for r in records for n in (r.extra.get("notes") or [])))
    if not head.extra["steps"]:
        notes.append(NO_STEPS_NOTE)
    elif window is not None and head.extra["steps"] < window.end:
        notes.append(f"the script made {head.extra['steps']} steps, fewer than the profiler window's "
                     f"{window.end} (--profile-steps): its trace holds the steps recorded before the end, if any")
    if frame is not None and frame["data_dependent"].any():
        notes.append(DATA_SIZED_NOTE)
    collectives = [] if frame is None else _clean(per_step(frame, timed).to_dict("records"))
    return RunRecord(
        source=Source(kind="script", script=spec.script, script_sha256=spec.identity.get("sha256")),
        variant=spec.label, preset=PRESET, device=env.get("device"), torch=env.get("torch"), world_size=world,
        command=spec.command, steps=int(head.extra["steps"]), warmup_steps=warmup, tokens_per_step=tokens,
        ms_per_step=ms, optimizer_ms=head.optimizer_ms, forward_backward_ms=head.forward_backward_ms,
        tokens_per_s=tokens_per_s, tokens_per_s_per_gpu=tokens_per_s / world if tokens_per_s else None,
        efficiency=Efficiency(tokens_per_s=tokens_per_s,
                              tokens_per_s_per_gpu=tokens_per_s / world if tokens_per_s else None,
                              extra={"tokens_per_step_source": TOKENS_SOURCE} if tokens else {}),
        peak_memory_mb=max((r.peak_memory_mb or 0.0) for r in records), final_loss=head.final_loss,
        phase_ms=head.phase_ms, attention_used=head.attention, ranks=records, simulated=simulated,
        gpu_state=gpustate.merge_ranks([r.gpu_state for r in records]), window_check=head.window_check,
        extra={"script": script_block(rd, spec, head), "attention_shim": shim, "collectives_per_step": collectives,
               "notes": notes})
