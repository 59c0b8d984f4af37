"""Benchmarks that drive the trainer directly (no run directory): phase-mark overhead."""

from __future__ import annotations

from typing import Any

import torch

from golfprof.model.data import DistributedLoader
from golfprof.model.train import DistInfo, Trainer
from golfprof.profiler.overhead import interleaved_overhead, per_range_cost_us
from golfprof.profiler.phases import Marker, PhaseClock
from golfprof.profiler.rundir import environment

from .run import RunSpec, default_warmup, ensure_data, resolve_device


def overhead(spec: RunSpec, pairs: int) -> dict[str, Any]:
    run = spec.run
    run.validate(1)
    device = resolve_device(spec.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    train_pattern, _ = ensure_data(spec, run, 0)
    clock = PhaseClock(device)
    marker = Marker(clock, marks=True)
    trainer = Trainer(run, device, DistInfo(), marker)
    loader = DistributedLoader(train_pattern, run.train.seq_len, run.train.micro_batch_seqs,
                               trainer.grad_accum, pin_memory=device.type == "cuda")
    warmup = spec.warmup_steps if spec.warmup_steps is not None else 2 * default_warmup(run, device)
    result = interleaved_overhead(lambda i: trainer.step(i, loader), marker, clock, device, warmup, pairs)
    env = environment(1, "none")
    return {"benchmark": "phase_overhead", "device": env["device"], "torch": env["torch"],
            "git_revision": env["git_revision"], "command": spec.command, "variant": run.variant,
            "preset": run.preset, "warmup_steps": warmup, **result,
            "per_range_us_no_profiler": per_range_cost_us(device)}
