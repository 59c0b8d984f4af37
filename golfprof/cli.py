"""The `golfprof` command line."""

from __future__ import annotations

import functools
import inspect
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from golfprof import options as O
from golfprof.ablations import variants as V
from golfprof.bench.attention import bench_attention_cmd
from golfprof.dashboards.command import dashboard
from golfprof.errors import ConfigError, GolfprofError, Interrupted, show_warnings
from golfprof.traces.command import analyze, diff

if TYPE_CHECKING:
    from golfprof.ablations.spec import RunSpec


class _OneErrorPath(TyperGroup):
    """Every command's GolfprofError becomes one ``error:`` line on stderr and its exit code (2: bad input)."""

    def invoke(self, ctx: Any) -> Any:
        try:  # typer 0.2x carries its own copy of click; older typer raises click's own exceptions
            from typer._click import exceptions as click_errors
        except ImportError:
            from click import exceptions as click_errors  # type: ignore[no-redef]
        try:
            return super().invoke(ctx)
        except Interrupted as e:
            print(f"interrupted: {e}", file=sys.stderr)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            print(f"interrupted: {ctx.invoked_subcommand or 'golfprof'} stopped by Ctrl-C", file=sys.stderr)
            raise typer.Exit(Interrupted.exit_code) from None
        except GolfprofError as e:
            print(f"error: {e}", file=sys.stderr)
            raise typer.Exit(e.exit_code) from None
        except click_errors.NoArgsIsHelpError:
            raise
        except click_errors.UsageError as e:  # an unknown option or command, a bad value: one line, as bad input
            command = e.ctx.command_path if e.ctx is not None else "golfprof"
            print(f"error: {e.format_message()} (see {command} --help)", file=sys.stderr)
            raise typer.Exit(e.exit_code) from None


app = typer.Typer(cls=_OneErrorPath, add_completion=False, no_args_is_help=True,
                  help="Profile and ablate banked-Muon speedrun trainers.")
app.command("analyze")(analyze)
app.command("diff")(diff)
app.command("dashboard")(dashboard)
console = Console(width=None if sys.stdout.isatty() else 200)  # piped: do not squeeze tables

Preset = O.annotated("preset")
Device = O.annotated("device")
Bf16 = O.annotated("bf16")
Compile = O.annotated("compile")
TokensPerStep = O.annotated("tokens_per_step")
DataDir = O.annotated("data_dir")
_RUN_PARAMS = O.parameters()


def with_run_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add the generated run options after the command's own; the command gets them as one dict, ``run``.

    Typer has no shared options (fastapi/typer#153), so typer is shown the signature the command would
    have had with them written out.
    """
    own = inspect.signature(command, eval_str=True)
    params = [p for name, p in own.parameters.items() if name != "run"] + _RUN_PARAMS

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        run = {p.name: kwargs.pop(p.name) for p in _RUN_PARAMS}
        command(**kwargs, run=run)

    wrapper.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params} | {"return": own.return_annotation}
    return wrapper


def check_folder(flag: str, path: Path) -> None:
    """A folder golfprof will create files under: refused now if it, or the nearest existing folder above it,
    is not a folder (mkdir would raise FileExistsError / NotADirectoryError halfway through a command)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "is a file" if probe == path else f"is under {probe}, which is a file"
        raise ConfigError(f"{flag} {path} {what}, not a folder")


def build_spec(*, variant: str, preset: str = "tiny", **values: Any) -> RunSpec:
    """Command-line values -> a validated RunSpec (the preset, the variant, then explicit overrides)."""
    from golfprof.ablations.spec import RunSpec
    from golfprof.model.data import check_shards

    toggles, train, launch = O.split(values)
    run = O.run_config(variant, preset, toggles, train)
    for pattern in (launch.get("train_data"), launch.get("val_data")):
        if pattern is not None:
            check_shards(pattern, run.model.vocab_size)  # fail before any process starts
    if not launch.get("train_data"):
        launch["val_data"] = None  # validation shards go with the user's own train shards
    if launch.get("sp_model") is not None and not Path(launch["sp_model"]).is_file():
        raise ConfigError(f"--sp-model {launch['sp_model']}: no such file")
    for flag, key in (("--runs-dir", "runs_dir"), ("--data-dir", "data_dir")):
        if launch.get(key) is not None:
            check_folder(flag, Path(launch[key]))
    return RunSpec(config=run.to_dict(), **launch, command=shlex.join(["golfprof", *sys.argv[1:]]))


# build_spec's keywords for runs started from code (bench overhead, tests): the CLI's defaults, unprofiled and quiet
_DEFAULTS: dict[str, Any] = O.defaults() | {"profile_steps": "off", "quiet": True}


def print_summary(s: dict[str, Any]) -> None:
    t = Table(title=f"{s['variant']} · {s['preset']} · world {s['world_size']} · {s['device']}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    fmt = {"ms_per_step": "{:.2f}", "optimizer_ms": "{:.3f}", "forward_backward_ms": "{:.2f}",
           "tokens_per_s": "{:,.0f}", "model_tflops_per_gpu": "{:.3g}", "mfu_pct": "{:.2f}",
           "peak_memory_mb": "{:,.0f}", "final_loss": "{:.4f}",
           "val_loss": "{:.4f}", "val_bits_per_token": "{:.4f}", "val_bpb": "{:.4f}"}
    for k, f in fmt.items():
        if s.get(k) is not None:
            t.add_row(k, f.format(s[k]))
    console.print(t)
    from golfprof.results.health import run_notes

    for note in run_notes(s):  # the window check of a profiled run, a GPU that throttled
        console.print(f"note: {note}", highlight=False)
    console.print(f"run directory: {s['run_dir']}", highlight=False)


def check_launch(spec: RunSpec) -> None:
    """What each rank would refuse (device, --warmup-steps, --profile-steps), refused here first: exit 2 before
    any process starts, and no run folder left behind."""
    from golfprof.ablations.run import resolve_device, warmup_and_window

    warmup_and_window(spec, spec.run, resolve_device(spec.device))


def _run(spec: RunSpec, nproc: int) -> int:
    """Join an existing launch, run in-process, or spawn torchrun; returns an exit code."""
    from golfprof.ablations.launch import check_nproc, export_slurm_env, launched_env, run_joined, spawn

    if spec.simulate_world is not None:
        return _simulate({spec.run.variant: spec}, nproc, spec.run.variant)
    export_slurm_env()
    info = launched_env()
    if info is not None:
        summary = run_joined(spec, info)
        if info.rank == 0:
            print_summary(summary)
        return 0
    check_nproc(nproc, spec.device)
    check_launch(spec)
    if nproc == 1:
        from golfprof.model.train import DistInfo
        try:
            summary = run_joined(spec, DistInfo())
        except KeyboardInterrupt:  # before or after the training loop, which words its own
            where = f": {spec.run_dir} is incomplete (no summary.json)" if spec.run_dir else ""
            raise Interrupted(f"Ctrl-C stopped the {spec.run.variant} run{where}") from None
        print_summary(summary)
        return 0
    from golfprof.profiler.rundir import RunDir

    rd = RunDir.new(Path(spec.runs_dir), spec.run.variant)
    spec.run_dir = str(rd.path)
    code, error = spawn(spec, nproc)
    if error:
        print(f"error: {error}", file=sys.stderr)
    if code == 0 and rd.is_complete():
        print_summary({**rd.read_record().to_dict(), "run_dir": spec.run_dir})
    return code


def _simulate(specs: dict[str, RunSpec], nproc: int, baseline: str) -> int:
    """--simulate-world: each variant's ranks played in this process over the fake backend, one after the
    other, then replayed through the cost model; several variants print the predicted comparison."""
    from golfprof.ablations import simulate as S
    from golfprof.predict import costmodel
    from golfprof.predict.compare import comparison as predicted_comparison
    from golfprof.predict.predict import predict

    if nproc != 1:
        raise ConfigError("--simulate-world plays every rank in this one process: leave --nproc at 1")
    for spec in specs.values():  # every bad value is refused before any training starts
        S.check(spec.simulate_world, spec.simulate_rank, spec.simulate_nodes)
        spec.run.validate(spec.simulate_world)
        check_launch(spec)
        if spec.comm_model is not None:
            costmodel.load(spec.comm_model)
    results = {}
    for name, spec in specs.items():
        out = S.simulate(spec, spec.simulate_world, spec.simulate_rank, spec.simulate_nodes)  # records only
        results[name] = out | {"prediction": predict(Path(out["run_dir"]), spec.comm_model,
                                                     spec.simulate_nodes)["prediction"]}
        print_prediction(results[name])
    if len(results) > 1:
        frame = predicted_comparison(results, baseline)
        t = Table(title=f"predicted at world {next(iter(specs.values())).simulate_world} (baseline {baseline})")
        for col in frame.columns:
            t.add_column(col, justify="left" if col == "variant" else "right")
        for row in frame.itertuples(index=False):
            t.add_row(*(str(v) if isinstance(v, str) else _fmt(v) for v in row))
        console.print(t)
    print(f"note: {S.LOSS_NOTE}; every communication figure above is predicted", file=sys.stderr)
    return 0


def print_prediction(s: dict[str, Any]) -> None:
    p = s["prediction"]
    t = Table(title=f"PREDICTED {s['variant']} · {s['preset']} · world {p['world_size']} ({p['nodes']} node(s)) · "
                    f"ranks played {p['simulated_ranks']} on {s['device']} · {p['comm_model']['name']}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [("measured ms/step of the rank played", s.get("ms_per_step")), ("predicted ms/step", p["ms_per_step"]),
            ("predicted optimizer ms", p["optimizer_ms"]), ("predicted comm ms", p["comm_ms"]),
            ("predicted exposed comm ms", p["exposed_comm_ms"]), ("predicted overlap %", p["comm_comp_overlap_pct"])]
    for k, v in rows:
        t.add_row(k, _fmt(v))
    console.print(t)
    console.print(f"run directory: {s['run_dir']} (prediction: simulated/predicted.json, simulated/trace/)",
                  highlight=False)


@app.command()
@with_run_options
def train(
    variant: Annotated[str, typer.Option(help="Named variant (see `golfprof variants`).")] = V.BASELINE, *,
    run: dict[str, Any],
) -> None:
    """Train one run in this process (or as one rank under torchrun/srun) and record it."""
    raise typer.Exit(_run(build_spec(variant=variant, **run), nproc=1))


@app.command()
@with_run_options
def ablate(
    variant: Annotated[list[str], typer.Option(help="Variant(s) to run; repeat the option for several.")] = [  # noqa: B006
        V.BASELINE],
    nproc: Annotated[int, typer.Option(help="Processes (one per GPU with CUDA; gloo on the CPU).")] = 1,
    repeats: Annotated[int, typer.Option(help="Runs per variant, interleaved A B A B.")] = 1,
    baseline: Annotated[Optional[str], typer.Option(help="Variant the others are compared with.")] = None,
    matrix_dir: Annotated[Optional[Path], typer.Option(
        help="Matrix folder (default: RUNS_DIR/matrix-<key of the command>).")] = None,
    sweep_tokens_per_step: Annotated[Optional[str], typer.Option(
        help="Comma list of global tokens/step to sweep (one variant); micro-batches shrink to fit.")] = None,
    *, run: dict[str, Any],
) -> None:
    """Run variant(s) across NPROC processes; several variants or repeats make a resumable matrix."""
    from golfprof.ablations.launch import check_nproc

    names, sweep = list(dict.fromkeys(variant)), sweep_tokens_per_step
    if repeats < 1:
        raise ConfigError("--repeats must be >= 1")
    check_nproc(nproc, run["device"])  # first: the world size divides the batch below
    if sweep is not None:
        specs = _sweep_specs(names, sweep, nproc, run)
        names = list(specs)
    else:
        specs = {name: build_spec(variant=name, **run) for name in names}
    base = baseline or (V.BASELINE if V.BASELINE in names else names[0])
    if base not in names:
        raise ConfigError(f"--baseline {base!r} is not among the variants run: {', '.join(names)}")
    for spec in specs.values():
        spec.run.validate(nproc)
        check_launch(spec)
    if run.get("simulate_world") is not None:
        raise typer.Exit(_simulate(specs, nproc, base))
    if nproc == 1:
        for name, twin in V.same_code_with_one_process({n: s.run.toggles for n, s in specs.items()}):
            print(f"note: with one process nothing is communicated: {name} runs the same code as {twin} "
                  f"(they differ only in {', '.join(V.COMM_TOGGLES)})", file=sys.stderr)
    if len(names) == 1 and repeats == 1 and matrix_dir is None and sweep is None:
        raise typer.Exit(_run(specs[names[0]], nproc))
    from golfprof.ablations.matrix import matrix_key
    from golfprof.profiler.rundir import MatrixDir

    mdir = matrix_dir or MatrixDir.default(run["runs_dir"], matrix_key(specs, nproc)).path
    check_folder("--matrix-dir" if matrix_dir else "--runs-dir", mdir)
    _matrix(specs, repeats, nproc, mdir, base, sweep=sweep is not None)


def _sweep_specs(names: list[str], sweep: str, nproc: int, opts: dict[str, Any]) -> dict[str, RunSpec]:
    """One spec per tokens/step value, keyed `<variant>-tps<N>`; micro-batches shrink to divide."""
    if len(names) != 1:
        raise ConfigError("--sweep-tokens-per-step takes exactly one --variant")
    try:
        values = [int(v) for v in sweep.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--sweep-tokens-per-step {sweep!r}: expected a comma list of integers") from None
    if not values:
        raise ConfigError("--sweep-tokens-per-step is empty")
    specs = {}
    for value in values:
        try:  # each value refused as the sweep's, before any folder exists
            spec = build_spec(variant=names[0], **{**opts, "tokens_per_step": value})
            if opts.get("micro_batch_seqs") is None:
                micro = spec.run.train.fitted_micro_batch(nproc)
                spec = build_spec(variant=names[0], **{**opts, "tokens_per_step": value, "micro_batch_seqs": micro})
            spec.run.validate(nproc)
        except ConfigError as e:
            raise ConfigError(f"--sweep-tokens-per-step value {value}: {e}") from None
        specs[f"{names[0]}-tps{value}"] = spec
    return specs


def print_sweep(matrix_dir: Path, state: dict[str, Any]) -> None:
    """ms/step and tokens/s per tokens/step setting: where one GPU saturates."""
    import statistics

    from golfprof.profiler.rundir import MatrixDir

    mdir = MatrixDir(matrix_dir)
    t = Table(title="tokens-per-step sweep")
    for col in ("tokens/step", "micro-batch × accum", "runs", "ms/step", "tokens/s", "MFU %"):
        t.add_column(col, justify="right")
    for key in state["variants"]:
        ok = [n for n, i in sorted(state["runs"].items()) if i["variant"] == key and i["status"] == "ok"]
        done = [mdir.run_named(n).read_summary() for n in ok]
        if not done:
            t.add_row(key, "—", "0", "failed", "—", "—")
            continue
        train = mdir.run_named(ok[0]).read_config()["train"]
        micro = train["micro_batch_seqs"]
        accum = train["tokens_per_step"] // train["seq_len"] // done[0]["world_size"] // micro

        def med(k: str) -> float | None:
            values = [d[k] for d in done if d.get(k) is not None]
            return statistics.median(values) if values else None

        t.add_row(f"{done[0]['tokens_per_step']:,}", f"{micro} × {accum}", str(len(done)), _fmt(med("ms_per_step")),
                  _fmt(med("tokens_per_s"), 0), _fmt(med("mfu_pct"), 1))
    console.print(t)


def _matrix(specs: dict[str, RunSpec], repeats: int, nproc: int, matrix_dir: Path, baseline: str,
            sweep: bool = False) -> None:
    from golfprof.ablations.matrix import run_matrix
    from golfprof.profiler.rundir import MatrixDir
    from golfprof.results.comparison import comparison, comparison_frame

    def event(name: str, status: str, error: Optional[str]) -> None:
        console.print(f"{name}: {status}" + (f" — {error}" if error else ""), highlight=False)

    console.print(f"matrix: {matrix_dir}", highlight=False)
    state = run_matrix(specs, repeats, nproc, matrix_dir, baseline, on_event=event)
    result = comparison(matrix_dir, state)
    MatrixDir(matrix_dir).write_comparison(result, comparison_frame(result))
    if sweep:
        print_sweep(matrix_dir, state)
    else:
        print_comparison(result)
    failed = [n for n, i in sorted(state["runs"].items()) if i["status"] != "ok" and i["variant"] in specs
              and i["repeat"] < repeats]
    if failed:  # a matrix with a failed run is not a result to trust silently: say where to look, exit 1
        mdir = MatrixDir(matrix_dir)
        where = [f"{n} (logs: {mdir.run_named(n).launch_logs})" if mdir.run_named(n).launch_logs.exists()
                 else f"{n} ({mdir.run_named(n).path})" for n in failed]
        print(f"error: {len(failed)} of {len(specs) * repeats} runs failed: {', '.join(where)}; "
              "re-run the same command to retry them", file=sys.stderr)
        raise typer.Exit(1)


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    return f"{v:,.{digits}f}"


def _verdict(row: dict[str, Any], baseline: str) -> str:
    """Only the baseline's own rows say "(baseline)"; a variant left without one to compare with says why."""
    if "verdict" in row:
        return row["verdict"]
    if row["variant"] == baseline:
        return "(baseline)"
    return "(no complete runs)" if not row["runs"] else "(not compared: no baseline runs)"


def print_comparison(result: dict[str, Any]) -> None:
    from golfprof.results.comparison import TABLE_METRICS

    t = Table(title=f"variants vs baseline {result['baseline']} (95% CI)")
    for col in ("variant", "metric", "runs", "value [CI]", "Δ vs baseline [CI]", "Δ %", "p", "verdict"):
        t.add_column(col, justify="right" if col not in ("variant", "metric", "verdict") else "left")
    for row in result["rows"]:
        if row["metric"] not in TABLE_METRICS:
            continue
        d = "" if "diff" not in row else (
            f"{_fmt(row['diff'], 3)} [{_fmt(row['diff_lo'], 3)}, {_fmt(row['diff_hi'], 3)}]")
        t.add_row(row["variant"], row["metric"], str(row["runs"]),
                  f"{_fmt(row['value'], 3)} [{_fmt(row['ci_lo'], 3)}, {_fmt(row['ci_hi'], 3)}]", d,
                  _fmt(row.get("diff_pct"), 1) if "diff" in row else "",
                  _fmt(row.get("p_value"), 3) if "diff" in row else "",
                  _verdict(row, result["baseline"]))
    console.print(t)
    console.print(result["note"], highlight=False)
    if not any(r["runs"] for r in result["rows"] if r["variant"] == result["baseline"]):
        console.print(f"baseline {result['baseline']}: no run completed, so no variant is compared with it",
                      highlight=False)
    for name, error in result["failed"].items():
        console.print(f"failed: {name}: {error}", highlight=False)
    from golfprof.results.health import check_lines

    for line in check_lines(result):  # A/A agreement of each repeated variant, runs whose GPU throttled
        console.print(line, highlight=False)


@app.command()
def regress(
    current: Annotated[Path, typer.Argument(help="Run directory or summary.json to check.")],
    baseline: Annotated[Path, typer.Option(help="Run directory, summary.json or baseline file.")],
    metric: Annotated[list[str], typer.Option(
        help="Metric(s) to gate; repeat for several (e.g. optimizer_ms, ms_per_step, phase:<name>).")] = [  # noqa: B006
        "optimizer_ms"],
    max_increase: Annotated[str, typer.Option(help="Allowed worsening, percent of the baseline (e.g. 5%).")] = "5%",
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable result on stdout.")] = False,
) -> None:
    """Exit 0 within bounds, 1 on a significant regression beyond the bound, 2 on bad input."""
    import json

    from golfprof.results.regress import parse_bound
    from golfprof.results.regress import regress as run_regress

    result = run_regress(current, baseline, metric, parse_bound(max_increase))
    if json_out:
        print(json.dumps(result, indent=2))
    else:
        for m in result["metrics"]:
            status = "REGRESSION" if m["regressed"] else "ok"
            console.print(f"{status}: {m['why']} [{m['test']}]", highlight=False)
        for note in result["throttled"]:
            console.print(f"warning: {note}", highlight=False)
    raise typer.Exit(1 if result["regressed"] else 0)


baseline_app = typer.Typer(no_args_is_help=True, help="Baseline files for `golfprof regress`.")
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("save")
def baseline_save(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (same config and device).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Baseline file to write (commit it).")] = Path(
        "baseline.json"),
) -> None:
    """Write a baseline (summary + per-step samples) meant to be committed."""
    from golfprof.results.regress import save_baseline

    data = save_baseline(runs, out)
    console.print(f"baseline: {out} ({len(data['sources'])} run(s), {len(data['samples'])} metrics with samples)",
                  highlight=False)


bench_app = typer.Typer(no_args_is_help=True, help="Micro-benchmarks of golfprof itself and of trainer parts.")
app.add_typer(bench_app, name="bench")


@bench_app.command("overhead")
def bench_overhead(
    preset: Preset = "tiny", variant: Annotated[str, typer.Option(help="Named variant.")] = V.BASELINE,
    pairs: Annotated[int, typer.Option(help="Marked/unmarked step pairs to time.")] = 10,
    device: Device = "auto", bf16: Bf16 = None, compile: Compile = None, tokens_per_step: TokensPerStep = None,
    warmup_steps: Annotated[Optional[int], typer.Option(help="Untimed leading steps.")] = None,
    data_dir: DataDir = Path("data"),
    out: Annotated[Optional[Path], typer.Option(help="Write the result JSON here.")] = None,
) -> None:
    """Cost of phase marks + timers: interleaved marked/unmarked steps, and µs per range."""
    import json

    from golfprof.bench.overhead import overhead
    from golfprof.profiler.rundir import write_json

    if pairs < 1:
        raise ConfigError("--pairs must be >= 1")
    spec = build_spec(**{**_DEFAULTS, "variant": variant, "preset": preset, "device": device, "bf16": bf16,
                         "compile": compile, "tokens_per_step": tokens_per_step, "data_dir": data_dir,
                         "warmup_steps": warmup_steps, "steps": None})
    result = overhead(spec, pairs)
    if out is not None:
        write_json(out, result)
    summary = {k: v for k, v in result.items() if k not in ("marked_ms", "unmarked_ms")}
    console.print_json(json.dumps(summary))
    lo, hi = result["overhead_pct_interval"]
    console.print(f"overhead {result['overhead_pct']:+.2f}% of a step ({100 * result['interval_confidence']:.0f}% "
                  f"interval {lo:+.2f}%..{hi:+.2f}%, {pairs} pairs)", highlight=False)
    if result["noise"]:
        import warnings

        from golfprof.errors import GolfprofWarning

        warnings.warn(f"this overhead figure is noise, not a measurement: {'; '.join(result['noise'])}",
                      GolfprofWarning, stacklevel=1)


@bench_app.command("ortho")
def bench_ortho_cmd(
    device: Device = "auto",
    reps: Annotated[int, typer.Option(help="Timed calls per row; the median is reported.")] = 50,
    warmup: Annotated[int, typer.Option(help="Untimed calls before each row's timing.")] = 10,
    out: Annotated[Optional[Path], typer.Option(
        help="Result JSON (default: benchmarks/results/ortho_<gpu>.json).")] = None,
    kernels: Annotated[Optional[str], typer.Option(
        help="Comma list of kernel rows (default: all): torch, triton (one call per bank), triton_set / triton_set2 "
             "(one graph for all banks on 1 / 2 streams), triton_pdl, triton_eager.")] = None,
) -> None:
    """Four-bank orthogonalization: ns5/polar_express x kernel x banked/unbanked, CUDA events,
    against a bf16 matmul ceiling measured in the same run; writes the table as JSON."""
    import torch

    from golfprof.bench.ortho import KERNELS, bench_ortho, default_path, table, write_result

    if device == "auto":
        if not torch.cuda.is_available():
            raise ConfigError("bench ortho times GPU kernels and no CUDA device is visible; "
                              "--device cpu gives a smoke run (tiny banks, torch rows only, host timer)")
        device = "cuda"
    if reps < 1 or warmup < 0:
        raise ConfigError("--reps must be >= 1 and --warmup >= 0")
    chosen = tuple(k.strip() for k in kernels.split(",") if k.strip()) if kernels is not None else KERNELS
    if not chosen or set(chosen) - set(KERNELS):
        raise ConfigError(f"--kernels {kernels!r}: choose from {', '.join(KERNELS)}")
    result = bench_ortho(device, reps=reps, warmup=warmup, kernels=chosen,
                         command=shlex.join(["golfprof", *sys.argv[1:]]))
    path = write_result(result, out or default_path(result))
    console.print(table(result), highlight=False)
    console.print(f"written: {path}", highlight=False)


bench_app.command("attention")(bench_attention_cmd)


@bench_app.command("comm")
def bench_comm_cmd(
    nproc: Annotated[int, typer.Option(help="Processes: one per GPU (NCCL) with CUDA, gloo on the CPU.")] = 1,
    out: Annotated[Path, typer.Option(
        help="Table to write; one already there keeps its other world sizes.")] = Path("comm_table.json"),
    min_bytes: Annotated[int, typer.Option(help="Smallest message: the full buffer, as nccl-tests counts.")] = 4 << 10,
    max_bytes: Annotated[int, typer.Option(help="Largest message (the sweep multiplies by 4).")] = 256 << 20,
    op: Annotated[Optional[list[str]], typer.Option(
        help="Op(s) to time: all_reduce, reduce_scatter, all_gather, broadcast (default: all).")] = None,
) -> None:
    """Time every collective over a size sweep at the world size present and write a cost table, which
    `--comm-model FILE` then predicts with: calibrate first, predict after."""
    from golfprof.bench.comm import OPS, bench_comm

    if min_bytes < 1 or max_bytes < min_bytes:
        raise ConfigError(f"--min-bytes {min_bytes} / --max-bytes {max_bytes}: need 1 <= min <= max")
    check_folder("--out", out.parent)
    doc = bench_comm(nproc, out, min_bytes, max_bytes, tuple(op or OPS))
    t = Table(title=f"{doc['name']} · world {nproc} · median µs")
    t.add_column("bytes", justify="right")
    ops = [o for o in (op or OPS) if o in doc["measured"]]
    for o in ops:
        t.add_column(o, justify="right")
    sizes = [b for b, _ in doc["measured"][ops[0]][str(nproc)]]
    for i, b in enumerate(sizes):
        t.add_row(f"{b:,}", *(_fmt(doc["measured"][o][str(nproc)][i][1], 1) for o in ops))
    console.print(t)
    console.print(f"written: {out}", highlight=False)


@app.command("variants")
def list_variants(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the table as Markdown (the README's).")] = False,
) -> None:
    """The named variants and what each changes relative to the baseline."""
    if markdown:
        print(V.markdown_table())
        return
    t = Table(title=f"golfprof variants (baseline: {V.BASELINE})")
    for col in ("variant", "changes", "description"):
        t.add_column(col)
    for row in V.table_rows():
        t.add_row(*row)
    console.print(t)


def main() -> None:
    show_warnings()
    app()


if __name__ == "__main__":
    main()
