"""One rank of one training run: data, trainer, profiler window, timers, run directory.

Rank 0 owns the shared files (config, environment, summary); every rank writes its own phase
table, step metrics and trace. The summary is written last, so its presence means "complete".
"""

from __future__ import annotations

import dataclasses
import math
import resource
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
import torch.distributed as dist

from golfprof import faults
from golfprof.errors import Diverged, Interrupted
from golfprof.model.config import ConfigError, RunConfig
from golfprof.model.data import build_byte_luts, load_validation, target_byte_count
from golfprof.model.flops import flops_per_token, ortho_flops_per_rank
from golfprof.model.prefetch import make_loader
from golfprof.model.synthetic import write_synthetic_dataset
from golfprof.model.train import DistInfo, Trainer
from golfprof.profiler import gpustate, phases
from golfprof.profiler.ceiling import ceiling
from golfprof.profiler.kineto import make_profiler
from golfprof.profiler.phases import NULL_CLOCK, Marker, PhaseClock
from golfprof.profiler.record import Efficiency, RankRecord, RunRecord, Source
from golfprof.profiler.rundir import RunDir, environment
from golfprof.profiler.window import Window, timed_steps
from golfprof.traces.typical import run_window_check

from .instruments import Instruments, closed
from .ownership import hold_shared
from .spec import RunSpec

MAX_SYNTHETIC_TOKENS = 32 * 2**20


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA GPU is visible")
        return torch.device("cuda", local_rank)
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"--device {name!r}: valid: auto, cpu, cuda")


def default_warmup(run: RunConfig, device: torch.device) -> int:
    return 3 if run.toggles.compile_enabled(device.type) else 1


def profile_window(spec: RunSpec, warmup: int, steps: int) -> Window | None:
    """Default: three active steps right after the warm-up (compilation settled), if they fit."""
    if spec.profile == "auto":
        if steps < 2:
            return None
        active = min(3, steps - 1)
        wait = max(0, min(warmup, steps - active - 1))
        return Window(wait=wait, warmup=1, active=active)
    window = Window.parse(spec.profile)
    if window is not None and window.end > steps:
        raise ConfigError(f"--profile-steps {spec.profile} needs {window.end} steps; the run has {steps}")
    return window


def warmup_and_window(spec: RunSpec, run: RunConfig, device: torch.device) -> tuple[int, Window | None]:
    """The warm-up and profiler window a run uses, refused when they do not fit its steps. The launcher calls
    it too, so a bad --warmup-steps or --profile-steps is an error before any rank or run folder exists."""
    steps = run.train.steps
    # the default never outgrows a short run (--steps 1 times its one step); a given warm-up must fit
    warmup = spec.warmup_steps if spec.warmup_steps is not None else min(default_warmup(run, device), steps - 1)
    if not 0 <= warmup < steps:
        raise ConfigError(f"--warmup-steps {warmup} must be below --steps {steps}")
    return warmup, profile_window(spec, warmup, steps)


def ensure_data(spec: RunSpec, run: RunConfig, rank: int) -> tuple[str, str | None]:
    """The user's shards, or synthetic ones written once by rank 0 (others wait at a barrier)."""
    if spec.train_data:
        return spec.train_data, spec.val_data
    tps = run.train.tokens_per_step
    train_tokens = min(MAX_SYNTHETIC_TOKENS, max(4, run.train.steps) * tps + 1)
    out = Path(spec.data_dir) / f"synthetic-v{run.model.vocab_size}-s{run.train.seed}-n{train_tokens}"
    val_tokens = max(run.train.val_tokens, run.train.seq_len + 1)
    paths: dict[str, Any] = {}
    if rank == 0:
        paths = write_synthetic_dataset(out, run.model.vocab_size, train_tokens, val_tokens, seed=run.train.seed)
    if dist.is_initialized():
        dist.barrier()
    if rank != 0:
        paths = write_synthetic_dataset(out, run.model.vocab_size, train_tokens, val_tokens, seed=run.train.seed)
    return paths["train"], paths["val"]


def shared_run_dir(spec: RunSpec, run: RunConfig, info: DistInfo) -> Path:
    """Rank 0 creates the folder (never reusing one); the others learn its name."""
    name = [spec.run_dir]
    if info.rank == 0 and name[0] is None:
        name[0] = str(RunDir.new(Path(spec.runs_dir), run.variant).path)
    if dist.is_initialized():
        dist.broadcast_object_list(name, src=0)
    path = Path(name[0])
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_identity(env: dict[str, Any]) -> dict[str, str]:
    """One id for all ranks of this run (rank 0's, broadcast) and the run's recorded start (env.json's): what
    tells two runs of one configuration apart when their traces end up in one folder. A collective: every
    rank calls it."""
    ident = [{"run_id": uuid.uuid4().hex, "run_started": env["started"]}]
    if dist.is_initialized():
        dist.broadcast_object_list(ident, src=0)
    return ident[0]


def enable_tf32() -> None:
    """The records train with TF32 on: fp32 matmuls (those outside autocast, all of `no_bf16_casts`'s)
    then use tensor cores instead of the far slower IEEE fp32 path."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def rank_record(steps: pd.DataFrame, phase_rows: pd.DataFrame, timed: set[int]) -> RankRecord:
    """Medians over one rank's timed steps."""
    timed_df = steps[steps.step.isin(timed)]
    per_phase: dict[str, float] = {}
    fwd_bwd = None
    if len(phase_rows):
        t = phase_rows[phase_rows.step.isin(timed)]
        per_step = t.groupby(["phase", "step"]).ms.sum().groupby("phase").median()
        per_phase = {k: float(v) for k, v in per_step.items()}
        fb = t[t.phase.isin([phases.FORWARD, phases.BACKWARD])]
        fwd_bwd = _median(fb.groupby("step").ms.sum().tolist())
    return RankRecord(ms_per_step=_median(timed_df.ms.tolist()), optimizer_ms=per_phase.get(phases.OPTIMIZER),
                      forward_backward_ms=fwd_bwd, phase_ms=per_phase,
                      final_loss=float(steps.loss.iloc[-1]) if len(steps) else None, timed_steps=len(timed))


def _evaluate(trainer: Trainer, spec: RunSpec, val_pattern: str | None) -> dict[str, float]:
    if not spec.evaluate or not val_pattern:
        return {}
    run = trainer.run
    val = load_validation(val_pattern, run.train.seq_len, run.train.val_tokens, run.model.vocab_size)
    out = trainer.evaluate(val)
    if spec.sp_model:
        luts = build_byte_luts(spec.sp_model, run.model.vocab_size)
        n_bytes = target_byte_count(val[:-1], val[1:], luts)
        n_tok = val.numel() - 1
        out["val_bpb"] = out["val_loss"] / math.log(2) * n_tok / n_bytes
    return out


def execute(spec: RunSpec, info: DistInfo, on_step: Callable[[int, float, float], None] | None = None,
            on_trainer: Callable[[Trainer], None] | None = None) -> dict[str, Any]:
    """:func:`train_rank`, its record as summary.json holds it plus ``run_dir``: what the launcher prints."""
    rd, record = train_rank(spec, info, on_step, on_trainer)
    return record.to_dict() | {"run_dir": str(rd.path)}


@dataclass
class Opened:
    """A run this rank has started: its config, device, warm-up and window, data, folder (held) and environment."""

    spec: RunSpec
    info: DistInfo
    run: RunConfig
    device: torch.device
    warmup: int
    window: Window | None
    train_pattern: str
    val_pattern: str | None
    rd: RunDir
    held: Any  # this rank's share of "a live run owns this folder"
    env: dict[str, Any]

    @property
    def steps(self) -> int:
        return self.run.train.steps


def open_run(spec: RunSpec, info: DistInfo) -> Opened:
    """Everything before the trainer: the config checked for this world, the device, the warm-up and profiler
    window, the data, the run folder (rank 0 creates it, every rank holds its lock) and, on rank 0, config.json
    and env.json."""
    run = spec.run
    run.validate(info.world_size)
    faults.configure(spec.extra.get("faults"))
    faults.mishandled_ctrl_c()
    device = resolve_device(spec.device, info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    enable_tf32()
    warmup, window = warmup_and_window(spec, run, device)
    train_pattern, val_pattern = ensure_data(spec, run, info.rank)  # first: an unwritable --data-dir leaves no run
    run_dir = shared_run_dir(spec, run, info)
    spec.run_dir = str(run_dir)  # recorded in config.json, and named by an interrupted caller
    rd = RunDir(run_dir)
    held = hold_shared(rd.lock)  # released on return or exit
    env = environment(info.world_size, info.backend)
    if info.rank == 0:
        rd.write_config(run.to_dict(), launch=dataclasses.asdict(spec), warmup_steps=warmup,
                        profile_window=dataclasses.asdict(window) if window else None)
        rd.write_env(env)
    return Opened(spec, info, run, device, warmup, window, train_pattern, val_pattern, rd, held, env)


def profiler_for(o: Opened) -> Any | None:
    """The torch.profiler window (not started yet), tagged with the run's identity; None when not profiled."""
    if o.window is None:
        return None
    meta = {"variant": o.run.variant, "rank": o.info.rank, "world_size": o.info.world_size,
            "config": o.run.to_dict(), "window": dataclasses.asdict(o.window), **run_identity(o.env)}
    return make_profiler(o.window, o.rd.path, o.info.rank, meta, cuda=o.device.type == "cuda",
                         shapes=o.spec.record_shapes, stacks=o.spec.with_stack, memory=o.spec.profile_memory)


def train_loop(trainer: Trainer, loader: Any, device: torch.device, steps: int, warmup: int,
               inst: Instruments) -> None:
    """The training loop: each step trained, the device waited for, timed and its loss checked; the instruments
    (timers, GC watch, samplers, profiler, progress bar) record it from outside."""
    for step in range(steps):
        if step == warmup:
            inst.warmed_up()  # compiled now: keep full collections out of the timed steps
        t0 = time.perf_counter()
        loss_t = trainer.step(step, loader)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        ms = (time.perf_counter() - t0) * 1e3
        loss = float(loss_t)
        if not math.isfinite(loss):
            raise Diverged(f"loss became {loss} at step {step}: lower the learning rates, or try --bf16 none")
        inst.record(step, loss, ms, trainer.hyper(step))


def train_rank(spec: RunSpec, info: DistInfo, on_step: Callable[[int, float, float], None] | None = None,
               on_trainer: Callable[[Trainer], None] | None = None) -> tuple[RunDir, RunRecord]:
    """Train, profile and record one run on this rank; returns its folder and the run record (rank 0's view).

    ``on_trainer`` sees the trainer before its first step (a simulated world registers its DDP hook there)."""
    o = open_run(spec, info)
    clock = PhaseClock(o.device) if spec.timers else NULL_CLOCK
    trainer = Trainer(o.run, o.device, info, Marker(clock, marks=spec.marks))
    if on_trainer is not None:
        on_trainer(trainer)
    tc = o.run.train
    loader = make_loader(o.run.toggles.loader, o.train_pattern, tc.seq_len, tc.micro_batch_seqs, trainer.grad_accum,
                         info.world_size, info.rank, o.device, vocab_size=o.run.model.vocab_size)
    inst = Instruments(o.device, info.rank, o.steps, clock, profiler_for(o),
                       show_progress=info.rank == 0 and not spec.quiet, on_step=on_step,
                       samplers=[gpustate.GpuSampler(o.device)])  # one NVML reading per step; nothing without NVML
    try:
        with inst, closed(loader):
            train_loop(trainer, loader, o.device, o.steps, o.warmup, inst)
    except KeyboardInterrupt:
        raise Interrupted(f"Ctrl-C stopped the {o.run.variant} run after {len(inst.step_rows)} of {o.steps} steps: "
                          f"{o.rd.path} is incomplete (no summary.json)") from None
    return o.rd, finish_run(o, trainer, inst)


def finish_run(o: Opened, trainer: Trainer, inst: Instruments) -> RunRecord:
    """After the last step: this rank's tables, the validation pass, every rank's figures gathered and, on rank 0,
    summary.json written last."""
    info = o.info
    steps_df, phases_df = inst.frames()
    o.rd.write_steps(info.rank, steps_df)
    o.rd.write_phases(info.rank, phases_df)
    evaluation = _evaluate(trainer, o.spec, o.val_pattern)
    timed = timed_steps(o.steps, o.warmup, o.window)
    mine = dataclasses.replace(rank_record(steps_df, phases_df, timed), rank=info.rank,
                               peak_memory_mb=peak_memory_mb(o.device), wall_s=inst.wall_s,
                               ortho_kernel=trainer.schedule.ortho_kernel, attention=trainer.attention_used,
                               kernels=dataclasses.asdict(trainer.kernels),
                               gpu_state=gpustate.summarize(steps_df, timed),
                               window_check=run_window_check(steps_df, phases_df, o.warmup, o.window))
    gathered = [mine]
    if dist.is_initialized():
        gathered = [None] * info.world_size
        dist.all_gather_object(gathered, mine)
    peak = ceiling(o.device) if info.rank == 0 else None
    record = build_record(o.run, o.env, gathered, evaluation, o.warmup, o.spec, peak)
    record.gpu_state = gpustate.merge_ranks([r.gpu_state for r in gathered])
    record.window_check = gathered[0].window_check  # the headline rank's; every rank's is in ranks
    if info.rank == 0:
        o.rd.write_record(record)
    o.held.close()
    return record


def efficiency(run: RunConfig, world_size: int, ms: float | None, optimizer_ms: float | None,
               peak: dict[str, Any] | None) -> dict[str, Any]:
    """tokens/s, model TFLOP/s and MFU (vs the measured ceiling and the datasheet), and the
    orthogonalization's own TFLOP/s over the optimizer phase."""
    if not ms:
        return {}
    tc = run.train
    per_token = flops_per_token(run.model, tc.seq_len)
    tokens_per_s = tc.tokens_per_step / (ms / 1e3)
    per_gpu_tflops = per_token * tokens_per_s / world_size / 1e12
    sharded = world_size > 1 and run.toggles.comm == "explicit"
    ortho = ortho_flops_per_rank(run.model, tc.muon_ns_steps, world_size, sharded)
    out: dict[str, Any] = {
        "tokens_per_s": tokens_per_s, "tokens_per_s_per_gpu": tokens_per_s / world_size,
        "flops_per_token": per_token, "model_tflops_per_gpu": per_gpu_tflops,
        "ortho_gflop_per_rank": ortho / 1e9,
        "optimizer_tflops": ortho / (optimizer_ms / 1e3) / 1e12 if optimizer_ms else None,
    }
    if peak is not None:
        ceil, sheet = peak["ceiling_tflops"], peak.get("datasheet_tflops")
        out.update(ceiling_tflops=ceil, ceiling_dtype=peak["dtype"], datasheet_tflops=sheet,
                   mfu_pct=100 * per_gpu_tflops / ceil,
                   mfu_datasheet_pct=100 * per_gpu_tflops / sheet if sheet else None,
                   optimizer_pct_of_ceiling=100 * out["optimizer_tflops"] / ceil if optimizer_ms else None)
    return out


def build_record(run: RunConfig, env: dict[str, Any], ranks: list[RankRecord],
                 evaluation: dict[str, float], warmup: int, spec: RunSpec,
                 peak: dict[str, Any] | None = None) -> RunRecord:
    """Rank 0's figures are the headline (collectives keep ranks in step); all ranks are kept."""
    head = ranks[0]
    eff = efficiency(run, env["world_size"], head.ms_per_step, head.optimizer_ms, peak)
    return RunRecord(
        source=Source(kind="golfprof"), variant=run.variant, preset=run.preset, device=env["device"],
        torch=env["torch"], world_size=env["world_size"], command=spec.command, steps=run.train.steps,
        warmup_steps=warmup, tokens_per_step=run.train.tokens_per_step, ms_per_step=head.ms_per_step,
        optimizer_ms=head.optimizer_ms, forward_backward_ms=head.forward_backward_ms,
        tokens_per_s=eff.get("tokens_per_s"), tokens_per_s_per_gpu=eff.get("tokens_per_s_per_gpu"),
        model_tflops_per_gpu=eff.get("model_tflops_per_gpu"), mfu_pct=eff.get("mfu_pct"),
        efficiency=Efficiency(**eff) if eff else None,
        peak_memory_mb=max((r.peak_memory_mb for r in ranks if r.peak_memory_mb is not None), default=None),
        final_loss=head.final_loss, **evaluation, phase_ms=head.phase_ms, toggles=dataclasses.asdict(run.toggles),
        ortho_kernel_used=head.ortho_kernel,  # triton falls back to torch without a GPU
        attention_used=head.attention,  # flash, cudnn, fa3 fall back to sdpa without a GPU
        kernels_used=head.kernels,  # fused MLP / CE and FP8 fall back to the reference path without a GPU
        ranks=ranks)
