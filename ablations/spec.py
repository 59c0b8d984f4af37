"""RunSpec: what a rank needs to run, beside the run's configuration. Torch-free: the CLI builds it.

The configuration (model, train, toggles) lives in ``config`` as a dict of ``RunConfig``; the other
fields are launch choices. Fields made with ``option`` are command-line options of ``train`` and
``ablate`` (golfprof/options.py generates them), declared here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from golfprof.model.config import RunConfig, check_ranges, option


@dataclass
class RunSpec:
    """Everything a rank needs; serialised to JSON for spawned workers."""

    config: dict[str, Any]
    device: Literal["auto", "cpu", "cuda"] = option("auto", "auto, cpu or cuda.")
    train_data: str | None = option(None, "Train shards (folder or glob); default: synthetic shards.", flag="--data")
    val_data: str | None = option(None, "Validation shards (folder or glob).")
    sp_model: str | None = option(None, "SentencePiece model for val_bpb.")
    runs_dir: str = option("runs", "Base folder of run directories.", type=Path)
    data_dir: str = option("data", "Where synthetic shards are cached.", type=Path)
    warmup_steps: int | None = option(None, "Leading steps left out of the medians (default 3 compiled, 1 eager).",
                                       min=0)
    profile: str = option("auto", "Profiler window WAIT,WARMUP,ACTIVE, 'auto' or 'off'.", flag="--profile-steps")
    record_shapes: bool = option(False, "Record op input shapes in the trace.")
    with_stack: bool = option(False, "Record Python stacks in the trace.")
    profile_memory: bool = option(False, "Record memory events in the trace.")
    marks: bool = option(True, "NVTX/record_function phase marks (off: overhead baseline).")
    timers: bool = option(True, "Always-on phase timers.")
    quiet: bool = option(False, "No progress bar.")
    simulate_world: int | None = option(
        None, "Play a world of N ranks in this process over the fake backend and predict its step (collectives "
        "modelled, compute measured); see docs/simulated-worlds.md.", min=1)
    simulate_rank: str = option("all", "With --simulate-world: the rank to play, or all (each distinct role once).")
    simulate_nodes: int = option(1, "With --simulate-world: nodes the world spans (400 Gb/s InfiniBand between them).",
                                 min=1)
    comm_model: str | None = option(
        None, "With --simulate-world: cost table, h100, h200 or a file from `golfprof bench comm` "
        "(default: the GPU's, else h200).")
    run_dir: str | None = None
    evaluate: bool = True
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_ranges(self)  # the numbers' declared ranges, before anything is launched

    @property
    def run(self) -> RunConfig:
        return RunConfig.from_dict(self.config)
