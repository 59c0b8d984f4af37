"""The `golfprof` command line: the error path, the run commands (train, ablate), and the registration of the
others, each defined in its own package's ``command`` module."""

from __future__ import annotations

import functools
import inspect
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer
from typer.core import TyperGroup

from golfprof import interrupts
from golfprof import options as O
from golfprof.ablations import script_command
from golfprof.ablations import variants as V
from golfprof.ablations.spec import build_spec, check_folder, sweep_specs
from golfprof.bench.command import bench_app
from golfprof.dashboards.command import dashboard
from golfprof.errors import (
    ConfigError,
    GolfprofError,
    Interrupted,
    finish_stdout,
    guard_stdout,
    os_error_message,
    show_warnings,
)
from golfprof.model.data_command import data_app
from golfprof.results.command import baseline_app, regress
from golfprof.tables import (
    console,
    print_comparison,
    print_frame,
    print_prediction,
    print_summary,
    print_sweep,
    print_variants,
)
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
        except GolfprofError as e:
            print(f"error: {e}", file=sys.stderr)
            raise typer.Exit(e.exit_code) from None
        except OSError as e:  # a read-only or full file system, no permission: the system's reason, exit 1
            print(f"error: {os_error_message(e)}", file=sys.stderr)
            raise typer.Exit(1) from None
        except click_errors.NoArgsIsHelpError:
            raise
        except click_errors.UsageError as e:  # an unknown option or command, a bad value: one line, as bad input
            command = e.ctx.command_path if e.ctx is not None else "golfprof"
            print(f"error: {e.format_message()} (see {command} --help)", file=sys.stderr)
            raise typer.Exit(e.exit_code) from None
        except (click_errors.ClickException, typer.Exit, typer.Abort):
            raise
        except (KeyboardInterrupt, Exception) as e:  # also a Ctrl-C library code wrapped (golfprof/interrupts.py)
            if not interrupts.caused_by_ctrl_c(e):
                raise
            print(f"interrupted: {ctx.invoked_subcommand or 'golfprof'} stopped by Ctrl-C", file=sys.stderr)
            raise typer.Exit(Interrupted.exit_code) from None


app = typer.Typer(cls=_OneErrorPath, add_completion=False, no_args_is_help=True,
                  help="Profile and ablate banked-Muon speedrun trainers.")
# commands defined in their own modules, one line each (train, ablate and variants follow below)
app.command("analyze")(analyze)
app.command("diff")(diff)
app.command("dashboard")(dashboard)
script_command.register(app)  # golfprof profile -- SCRIPT [ARGS...]
app.command("regress")(regress)
app.add_typer(baseline_app, name="baseline")
app.add_typer(bench_app, name="bench")
app.add_typer(data_app, name="data")

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


def check_launch(spec: RunSpec) -> None:
    """What each rank would refuse (device, --warmup-steps, --profile-steps), refused here first: exit 2 before
    any process starts, and no run folder left behind."""
    from golfprof.ablations.run import warmup_and_window
    from golfprof.model.device import resolve_device

    warmup_and_window(spec, spec.run, resolve_device(spec.device))


def _run_here(spec: RunSpec) -> int:
    """One process, this one: the run, then its summary."""
    from golfprof.ablations.launch import run_joined
    from golfprof.model.train import DistInfo

    try:
        summary = run_joined(spec, DistInfo())
    except KeyboardInterrupt:  # before or after the training loop, which words its own
        where = f": {spec.run_dir} is incomplete (no summary.json)" if spec.run_dir else ""
        raise Interrupted(f"Ctrl-C stopped the {spec.run.variant} run{where}") from None
    print_summary(summary)
    return 0


def _run(spec: RunSpec, nproc: int) -> int:
    """Join an existing launch, run in-process, or spawn torchrun; returns an exit code."""
    from golfprof.ablations.launch import check_nproc, export_slurm_env, launched_env, run_joined, spawn
    from golfprof.profiler.rundir import RunDir

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
        return _run_here(spec)
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
    from golfprof.predict.compare import causes as predicted_causes
    from golfprof.predict.compare import comparison as predicted_comparison
    from golfprof.predict.devices import check_run as check_target
    from golfprof.predict.predict import predict

    if nproc != 1:
        raise ConfigError("--simulate-world plays every rank in this one process: leave --nproc at 1")
    for spec in specs.values():  # every bad value is refused before any training starts
        S.check(spec.simulate_world, spec.simulate_rank, spec.simulate_nodes)
        spec.run.validate(spec.simulate_world)
        check_launch(spec)
        costmodel.check_covers(spec.comm_model, spec.simulate_world, spec.simulate_nodes)
        if spec.target_gpu:
            check_target(spec.target_gpu, spec.device)  # the device table and the GPU, before any process
    results = {}
    for name, spec in specs.items():
        out = S.simulate(spec, spec.simulate_world, spec.simulate_rank, spec.simulate_nodes)  # records only
        results[name] = out | {"prediction": predict(Path(out["run_dir"]), spec.comm_model,
                                                     spec.simulate_nodes, spec.target_gpu)["prediction"]}
        print_prediction(results[name])
    if len(results) > 1:
        world = next(iter(specs.values())).simulate_world
        print_frame(f"predicted at world {world} (baseline {baseline})", predicted_comparison(results, baseline))
        why = predicted_causes(results, baseline)
        if why is not None:
            print_frame(f"predicted breakdown at world {world}: each line's Δ vs {baseline} (ms)", why)
    print(f"note: {S.LOSS_NOTE}; every communication figure above is predicted", file=sys.stderr)
    return 0


@app.command()
@with_run_options
def train(
    variant: Annotated[str, typer.Option(help="Named variant (see `golfprof variants`).")] = V.BASELINE, *,
    run: dict[str, Any],
) -> None:
    """Train one run in this process (or as one rank under torchrun/srun) and record it."""
    raise typer.Exit(_run(build_spec(variant=variant, **run), nproc=1))


def _specs(names: list[str], sweep: Optional[str], nproc: int, run: dict[str, Any]) -> dict[str, RunSpec]:
    """One spec per variant, or per tokens/step value of a sweep of one variant."""
    if sweep is None:
        return {name: build_spec(variant=name, **run) for name in names}
    if len(names) != 1:
        raise ConfigError("--sweep-tokens-per-step takes exactly one --variant")
    return sweep_specs(names[0], sweep, nproc, run)


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

    sweep = sweep_tokens_per_step
    if repeats < 1:
        raise ConfigError("--repeats must be >= 1")
    check_nproc(nproc, run["device"])  # first: the world size divides the batch below
    specs = _specs(list(dict.fromkeys(variant)), sweep, nproc, run)
    names = list(specs)
    base = baseline or (V.BASELINE if V.BASELINE in names else names[0])
    if base not in names:
        raise ConfigError(f"--baseline {base!r} is not among the variants run: {', '.join(names)}")
    for spec in specs.values():
        spec.run.validate(nproc)
        check_launch(spec)
    if run.get("simulate_world") is not None:
        raise typer.Exit(_simulate(specs, nproc, base))
    if nproc == 1:
        runs = {n: s.run for n, s in specs.items()}
        for name, twin in V.same_code_with_one_process({n: r.toggles for n, r in runs.items()},
                                                       {n: (r.model, r.train) for n, r in runs.items()}):
            differ = V.comm_differences(runs[name].toggles, runs[twin].toggles)
            how = f"they differ only in {', '.join(differ)}" if differ else "their settings are the same"
            print(f"note: with one process nothing is communicated: {name} runs the same code as {twin} ({how})",
                  file=sys.stderr)
    if len(names) == 1 and repeats == 1 and matrix_dir is None and sweep is None:
        raise typer.Exit(_run(specs[names[0]], nproc))
    from golfprof.ablations.matrix import matrix_key
    from golfprof.profiler.rundir import MatrixDir

    mdir = matrix_dir or MatrixDir.default(run["runs_dir"], matrix_key(specs, nproc)).path
    check_folder("--matrix-dir" if matrix_dir else "--runs-dir", mdir)
    _matrix(specs, repeats, nproc, mdir, base, sweep=sweep is not None)


def _matrix(specs: dict[str, RunSpec], repeats: int, nproc: int, matrix_dir: Path, baseline: str,
            sweep: bool = False) -> None:
    """Run (or resume) the matrix, write and print its comparison; exit 1 naming the runs that failed."""
    from golfprof.ablations.matrix import run_matrix
    from golfprof.profiler.rundir import MatrixDir
    from golfprof.results.comparison import comparison, comparison_frame

    def event(name: str, status: str, error: Optional[str]) -> None:
        console.print(f"{name}: {status}" + (f" — {error}" if error else ""), highlight=False)

    console.print(f"matrix: {matrix_dir}", highlight=False)
    state = run_matrix(specs, repeats, nproc, matrix_dir, baseline, on_event=event)
    result = comparison(matrix_dir, state)
    mdir = MatrixDir(matrix_dir)
    mdir.write_comparison(result, comparison_frame(result))
    if sweep:
        print_sweep(matrix_dir, state)
    else:
        print_comparison(result)
    failed = [n for n, i in sorted(state["runs"].items()) if i["status"] != "ok" and i["variant"] in specs
              and i["repeat"] < repeats]
    if failed:  # a matrix with a failed run is not a result to trust silently: say where to look, exit 1
        where = [f"{n} (logs: {mdir.run_named(n).launch_logs})" if mdir.run_named(n).launch_logs.exists()
                 else f"{n} ({mdir.run_named(n).path})" for n in failed]
        print(f"error: {len(failed)} of {len(specs) * repeats} runs failed: {', '.join(where)}; "
              "re-run the same command to retry them", file=sys.stderr)
        raise typer.Exit(1)


@app.command("variants")
def list_variants(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the table as Markdown (the README's).")] = False,
) -> None:
    """The named variants and what each changes relative to the baseline."""
    if markdown:
        print(V.markdown_table())
    else:
        print_variants(V.table_rows(), V.BASELINE)


def main() -> None:
    """The process's entry (the console script, ``python -m golfprof[.cli]``): the CLI, then its exit status, a
    Ctrl-C however Python delivered it ending as exit 130 (golfprof/interrupts.py)."""
    interrupts.install()
    show_warnings()
    guard_stdout()  # a closed pipe on stdout never stops the work
    try:
        app()
        code: int | str | None = 0
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt:  # after the commands' own handlers: between them and here
        print("interrupted: golfprof stopped by Ctrl-C", file=sys.stderr)
        code = interrupts.EXIT
    interrupts.leave(interrupts.settle(finish_stdout(code)))


if __name__ == "__main__":
    main()
