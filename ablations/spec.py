"""RunSpec: what a rank needs to run, beside the run's configuration, and how one is built. Torch-free.

The configuration (model, train, toggles) lives in ``config`` as a dict of ``RunConfig``; the other
fields are launch choices. Fields made with ``option`` are command-line options of ``train`` and
``ablate`` (golfprof/options.py generates them), declared here once. :func:`build_spec` turns those
options' values into a checked spec, so that bad input is refused before any process starts.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from golfprof.errors import ConfigError
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
    record_faithful: bool = option(
        False, "The banking record's own choices where golfprof's defaults differ: attention FA3 (without its "
        "package SDPA's cuDNN kernel, the nearest on Hopper), the record's synchronous loader, torch's "
        "orthogonalizer, the every-step EMA as a Python loop; refused with a variant or option that sets one of them.")
    simulate_world: int | None = option(
        None, "Play a world of N ranks in this process over the fake backend and predict its step (collectives "
        "modelled, compute measured); see docs/simulated-worlds.md.", min=1)
    simulate_rank: str = option("all", "With --simulate-world: the rank to play, or all (each distinct role once).")
    simulate_nodes: int = option(1, "With --simulate-world: nodes the world spans (400 Gb/s InfiniBand between them).",
                                 min=1)
    comm_model: str | None = option(
        None, "With --simulate-world: cost table, h100, h200 or a file from `golfprof bench comm` "
        "(default: the GPU's, else h200).")
    target_gpu: str | None = option(
        None, "With --simulate-world: also predict the step on this GPU, h100, h200 or a device table FILE (every "
        "kernel rescaled by the target's peak bf16 FLOP/s or HBM bandwidth); see docs/simulated-worlds.md.")
    stall_timeout: float = option(
        600.0, "Seconds a rank of a spawned job may make no progress (enter no phase) before the job is ended with "
        "its logs kept; collectives time out a minute later.", min=1)
    run_dir: str | None = None
    evaluate: bool = True
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_ranges(self)  # the numbers' declared ranges, before anything is launched
        if self.target_gpu is not None and self.simulate_world is None:  # it rescales a prediction: there is none
            raise ConfigError("--target-gpu predicts a simulated world's step on another GPU: give --simulate-world N")

    @property
    def run(self) -> RunConfig:
        return RunConfig.from_dict(self.config)


def check_folder(flag: str, path: Path) -> None:
    """A folder golfprof will create files under: refused now if it, or the nearest existing folder above it,
    is not a folder (mkdir would raise FileExistsError / NotADirectoryError halfway through a command)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "is a file" if probe == path else f"is under {probe}, which is a file"
        raise ConfigError(f"{flag} {path} {what}, not a folder")


def _check_inputs(run: RunConfig, launch: dict[str, Any]) -> None:
    """The files and folders a run will read or write, refused now rather than inside a rank."""
    from golfprof.model.data import check_shards

    for pattern in (launch.get("train_data"), launch.get("val_data")):
        if pattern is not None:
            check_shards(pattern, run.model.vocab_size)
    if launch.get("sp_model") is not None and not Path(launch["sp_model"]).is_file():
        raise ConfigError(f"--sp-model {launch['sp_model']}: no such file")
    for flag, key in (("--runs-dir", "runs_dir"), ("--data-dir", "data_dir")):
        if launch.get(key) is not None:
            check_folder(flag, Path(launch[key]))
    if launch.get("runs_dir") is not None:  # always written: a read-only one is refused before any data is made
        from golfprof.profiler.rundir import check_writable

        check_writable("--runs-dir", Path(launch["runs_dir"]))


def build_spec(*, variant: str, preset: str = "tiny", **values: Any) -> RunSpec:
    """Command-line values (by parameter name) -> a validated RunSpec: the preset, the variant, then the
    explicit overrides."""
    from golfprof import options

    toggles, train, launch = options.split(values)
    if launch.get("record_faithful"):
        from golfprof.ablations.variants import record_faithful

        toggles = record_faithful(variant, toggles)
    run = options.run_config(variant, preset, toggles, train)
    world = launch.get("simulate_world")
    if world and "micro_batch_seqs" not in train:  # a simulated world gets a micro-batch that divides its share
        import dataclasses

        run = dataclasses.replace(run, train=dataclasses.replace(run.train,
                                                                 micro_batch_seqs=run.train.fitted_micro_batch(world)))
    _check_inputs(run, launch)
    if not launch.get("train_data"):
        launch["val_data"] = None  # validation shards go with the user's own train shards
    return RunSpec(config=run.to_dict(), **launch, command=shlex.join(["golfprof", *sys.argv[1:]]))


def code_defaults() -> dict[str, Any]:
    """build_spec's keywords for runs started from code (bench overhead, tests): the CLI's defaults, unprofiled
    and quiet."""
    from golfprof import options

    return options.defaults() | {"profile_steps": "off", "quiet": True}


def sweep_specs(variant: str, sweep: str, nproc: int, values: dict[str, Any]) -> dict[str, RunSpec]:
    """``--sweep-tokens-per-step``: one spec per tokens/step value, keyed ``<variant>-tps<N>``; micro-batches
    shrink to divide unless ``--micro-batch-seqs`` is given."""
    try:
        tokens = [int(v) for v in sweep.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--sweep-tokens-per-step {sweep!r}: expected a comma list of integers") from None
    if not tokens:
        raise ConfigError("--sweep-tokens-per-step is empty")
    specs = {}
    for value in tokens:
        try:  # each value refused as the sweep's, before any folder exists
            spec = build_spec(variant=variant, **{**values, "tokens_per_step": value})
            if values.get("micro_batch_seqs") is None:
                micro = spec.run.train.fitted_micro_batch(nproc)
                spec = build_spec(variant=variant, **{**values, "tokens_per_step": value, "micro_batch_seqs": micro})
            spec.run.validate(nproc)
        except ConfigError as e:
            raise ConfigError(f"--sweep-tokens-per-step value {value}: {e}") from None
        specs[f"{variant}-tps{value}"] = spec
    return specs
