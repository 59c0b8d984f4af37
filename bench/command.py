"""``golfprof bench ...``: the benchmark commands, and ``python -m golfprof.bench.ortho`` for device scripts.

Torch-free to import (the CLI loads this module on every start); each command loads its benchmark
when it runs. The CLI registers ``bench_app`` with one line.
"""

from __future__ import annotations

import json
import shlex
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from golfprof import options as O
from golfprof.ablations import variants as V
from golfprof.errors import ConfigError, GolfprofWarning
from golfprof.tables import console, print_cost_table

from .attention import bench_attention_cmd

bench_app = typer.Typer(no_args_is_help=True, help="Micro-benchmarks of golfprof itself and of trainer parts.")
bench_app.command("attention")(bench_attention_cmd)

Preset, Device, Bf16, Compile = (O.annotated(p) for p in ("preset", "device", "bf16", "compile"))
TokensPerStep, DataDir = O.annotated("tokens_per_step"), O.annotated("data_dir")
# bench ortho's options, declared once for `golfprof bench ortho` and the device script's `bench`
Reps = Annotated[int, typer.Option(help="Timed calls per row; the median is reported.")]
Warmup = Annotated[int, typer.Option(help="Untimed calls before each row's timing.")]
OrthoOut = Annotated[Optional[Path], typer.Option(help="Result JSON (default: benchmarks/results/ortho_<gpu>.json).")]
Kernels = Annotated[Optional[str], typer.Option(
    help="Comma list of kernel rows (default: all): torch, triton (one call per bank), triton_set / triton_set2 "
         "(one graph for all banks on 1 / 2 streams), triton_pdl, triton_eager.")]
NO_GPU = ("bench ortho times GPU kernels and no CUDA device is visible; "
          "--device cpu gives a smoke run (tiny banks, torch rows only, host timer)")


@bench_app.command("overhead")
def bench_overhead(
    preset: Preset = "tiny",
    variant: Annotated[str, typer.Option(help="Named variant.")] = V.BASELINE,
    pairs: Annotated[int, typer.Option(help="Marked/unmarked step pairs to time.")] = 10,
    device: Device = "auto", bf16: Bf16 = None, compile: Compile = None, tokens_per_step: TokensPerStep = None,
    warmup_steps: Annotated[Optional[int], typer.Option(help="Untimed leading steps.")] = None,
    data_dir: DataDir = Path("data"),
    out: Annotated[Optional[Path], typer.Option(
        help="Write the result JSON here (a re-run replaces it: the newest measurement is the result).")] = None,
) -> None:
    """Cost of phase marks + timers: interleaved marked/unmarked steps, and µs per range."""
    from golfprof.ablations.spec import build_spec, code_defaults
    from golfprof.bench.overhead import overhead
    from golfprof.profiler.rundir import check_output, write_result

    if pairs < 1:
        raise ConfigError("--pairs must be >= 1")
    if out is not None:
        check_output(out, "--out", force=True)
    spec = build_spec(**{**code_defaults(), "variant": variant, "preset": preset, "device": device, "bf16": bf16,
                         "compile": compile, "tokens_per_step": tokens_per_step, "data_dir": data_dir,
                         "warmup_steps": warmup_steps, "steps": None})
    result = overhead(spec, pairs)
    if out is not None:
        write_result(out, result)
    console.print_json(json.dumps({k: v for k, v in result.items() if k not in ("marked_ms", "unmarked_ms")}))
    lo, hi = result["overhead_pct_interval"]
    console.print(f"overhead {result['overhead_pct']:+.2f}% of a step ({100 * result['interval_confidence']:.0f}% "
                  f"interval {lo:+.2f}%..{hi:+.2f}%, {pairs} pairs)", highlight=False)
    if result["noise"]:
        warnings.warn(f"this overhead figure is noise, not a measurement: {'; '.join(result['noise'])}",
                      GolfprofWarning, stacklevel=1)


@bench_app.command("ortho")
def bench_ortho_cmd(device: Device = "auto", reps: Reps = 50, warmup: Warmup = 10, out: OrthoOut = None,
                    kernels: Kernels = None) -> None:
    """Four-bank orthogonalization: ns5/polar_express x kernel x banked/unbanked, CUDA events,
    against a bf16 matmul ceiling measured in the same run; writes the table as JSON."""
    from golfprof.bench.ortho import KERNELS, bench_ortho, default_path, table, write_result
    from golfprof.model.device import resolve_device

    if reps < 1 or warmup < 0:
        raise ConfigError("--reps must be >= 1 and --warmup >= 0")
    chosen = tuple(k.strip() for k in kernels.split(",") if k.strip()) if kernels is not None else KERNELS
    if not chosen or set(chosen) - set(KERNELS):
        raise ConfigError(f"--kernels {kernels!r}: choose from {', '.join(KERNELS)}")
    resolved = resolve_device(device, gpu_only=NO_GPU)
    if out is not None:
        from golfprof.profiler.rundir import check_output

        check_output(out, "--out", force=True)  # a re-run replaces it: the newest measurement is the result
    result = bench_ortho(resolved, reps=reps, warmup=warmup, kernels=chosen,
                         command=shlex.join(["golfprof", *sys.argv[1:]]))
    path = write_result(result, out or default_path(result))
    console.print(table(result), highlight=False)
    console.print(f"written: {path}", highlight=False)


FUSED_NO_GPU = ("bench {kind} times GPU kernels and no CUDA device is visible; --device cpu gives a smoke run "
                "(tiny shapes, reference rows only, host timer)")
FusedOut = Annotated[Optional[Path], typer.Option(help="Result JSON (default: benchmarks/results/<bench>_<gpu>.json).")]


def _bench_fused(kind: str, device: str, reps: int, warmup: int, out: Optional[Path]) -> None:
    from golfprof.bench.fused import bench_fused, table
    from golfprof.bench.ortho import write_result
    from golfprof.model.device import resolve_device

    if reps < 1 or warmup < 0:
        raise ConfigError("--reps must be >= 1 and --warmup >= 0")
    resolved = resolve_device(device, gpu_only=FUSED_NO_GPU.format(kind=kind))
    if out is not None:
        from golfprof.profiler.rundir import check_output

        check_output(out, "--out", force=True)  # a re-run replaces it: the newest measurement is the result
    result = bench_fused(kind, resolved, reps=reps, warmup=warmup, command=shlex.join(["golfprof", *sys.argv[1:]]))
    slug = "".join(c if c.isalnum() else "_" for c in result["device"].lower()).strip("_")
    path = write_result(result, out or Path("benchmarks/results") / f"{kind}_{slug}.json")
    console.print(table(result), highlight=False)
    console.print(f"written: {path}", highlight=False)


@bench_app.command("mlp")
def bench_mlp_cmd(device: Device = "auto", reps: Reps = 30, warmup: Warmup = 5, out: FusedOut = None) -> None:
    """The LeakyReLU(0.5)² MLP at the full preset's shapes: compiled reference vs the fused Triton kernels,
    forward and forward+backward, CUDA events, TFLOP/s against a bf16 matmul ceiling measured in the same run."""
    _bench_fused("mlp", device, reps, warmup, out)


@bench_app.command("ce")
def bench_ce_cmd(device: Device = "auto", reps: Reps = 30, warmup: Warmup = 5, out: FusedOut = None) -> None:
    """Softcapped cross-entropy at the full preset's shape: compiled reference vs the fused Triton kernel,
    forward and forward+backward, CUDA events, GB/s against a device copy's bandwidth measured in the same run."""
    _bench_fused("ce", device, reps, warmup, out)


@bench_app.command("comm")
def bench_comm_cmd(
    nproc: Annotated[int, typer.Option(help="Processes: one per GPU (NCCL) with CUDA, gloo on the CPU.")] = 1,
    out: Annotated[Path, typer.Option(
        help="Table to write; one already there keeps its other world sizes.")] = Path("comm_table.json"),
    min_bytes: Annotated[int, typer.Option(help="Smallest message: the full buffer, as nccl-tests counts.")] = 4 << 10,
    max_bytes: Annotated[int, typer.Option(help="Largest message (the sweep multiplies by 4).")] = 256 << 20,
    op: Annotated[Optional[list[str]], typer.Option(
        help="Op(s) to time: all_reduce, reduce_scatter, all_gather, broadcast (default: all).")] = None,
    interference: Annotated[bool, typer.Option(
        help="Instead of the sweep, one GPU: the trainer's GEMMs beside a copy kernel on k SMs; the slowdown is "
             "written into the table at --out as interference_probe (docs/simulated-worlds.md).")] = False,
    interference_sms: Annotated[Optional[int], typer.Option(
        min=1, help="With --interference: the copy kernel's CTAs (default: the table's nchannels, else 16).")] = None,
    preset: Preset = "full",
) -> None:
    """Time every collective over a size sweep at the world size present and write a cost table, which
    `--comm-model FILE` then predicts with: calibrate first, predict after."""
    from golfprof.bench.comm import OPS, bench_comm
    from golfprof.profiler.rundir import check_output

    if min_bytes < 1 or max_bytes < min_bytes:
        raise ConfigError(f"--min-bytes {min_bytes} / --max-bytes {max_bytes}: need 1 <= min <= max")
    check_output(out, "--out", force=True)  # merged into, by design: a table keeps its other world sizes
    if interference:
        from golfprof.bench.interference import bench_interference

        got = bench_interference(out, interference_sms, preset)["interference_probe"]
        console.print(f"interference_probe {got['value']:.4f}: {got['source']}\nwritten: {out}", highlight=False)
        return
    doc = bench_comm(nproc, out, min_bytes, max_bytes, tuple(op or OPS))
    print_cost_table(doc, nproc, list(op or OPS))
    console.print(f"written: {out}", highlight=False)


# ---- `python -m golfprof.bench.ortho bench|sweep|check`: the device scripts' entry -----------------------

ortho_script = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="Orthogonalizer benchmarks for device scripts (python -m golfprof.bench.ortho).")
ScriptOut = Annotated[Optional[Path], typer.Option(help="Write the result JSON here.")]


@ortho_script.command("bench")
def ortho_script_bench(
    configs: Annotated[Optional[Path], typer.Option(
        help="Sweep JSON whose winners replace ortho_triton.TUNED (missing: the built-in configs).")] = None,
    device: Device = "auto", reps: Reps = 50, warmup: Warmup = 10, out: OrthoOut = None, kernels: Kernels = None,
) -> None:
    """`golfprof bench ortho`, after loading tuned block configurations from a sweep."""
    if configs is not None:
        from golfprof.model import ortho_triton as OT

        if configs.exists():
            OT.TUNED.clear()
            OT.load_tuned(json.loads(configs.read_text()))
            console.print(f"configs from {configs}: {len(OT.TUNED)} entries", highlight=False)
        else:
            console.print(f"{configs} missing: built-in configs", highlight=False)
    bench_ortho_cmd(device=device, reps=reps, warmup=warmup, out=out, kernels=kernels)


@ortho_script.command("sweep")
def ortho_script_sweep(out: ScriptOut = None) -> None:
    """µs per launch of each candidate Triton block configuration, per shape (GPU)."""
    from golfprof.bench.ortho import sweep_configs, write_result

    result = sweep_configs(path=out)
    if out is not None:
        write_result(result, out)


@ortho_script.command("check")
def ortho_script_check(out: ScriptOut = None) -> None:
    """The Triton path against the torch path and float64 on the bank and shard shapes (GPU)."""
    from golfprof.bench.ortho import check_shapes, write_result

    result = check_shapes()
    if out is not None:
        write_result(result, out)


def ortho_main(argv: list[str] | None = None) -> None:
    """The device scripts' entry: one ``error:`` line and exit 2 on bad input, as the CLI."""
    from golfprof.errors import GolfprofError

    try:
        ortho_script(argv, prog_name="python -m golfprof.bench.ortho")
    except GolfprofError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
