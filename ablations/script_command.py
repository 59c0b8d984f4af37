"""`golfprof profile [OPTIONS] -- SCRIPT [ARGS...]`: any training script, unmodified, as a golfprof run.

Like torchrun, everything after SCRIPT is the script's own (``--`` is optional): ``golfprof profile --nproc 2
train.py --lr 3e-4``. The options are ScriptSpec's fields (ablations/script_spec.py), those it shares with
``ablate`` declared once in RunSpec; ``--env K=V`` (repeatable) is this command's own.
"""

from __future__ import annotations

import functools
import inspect
import shlex
import sys
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from golfprof import options as O

from .script_spec import ScriptSpec, parse_env

CONTEXT = {"allow_interspersed_args": False}  # the first argument that is not an option is SCRIPT; the rest its own
_OPTIONS = O.launch_options(ScriptSpec)


def _with_spec_options(command: Callable[..., None]) -> Callable[..., None]:
    """The command's own parameters, then ScriptSpec's generated options; the command gets those as ``values``."""
    own = inspect.signature(command, eval_str=True)
    params = [p for name, p in own.parameters.items() if name != "values"] + [o.parameter() for o in _OPTIONS]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        values = {o.param: kwargs.pop(o.param) for o in _OPTIONS}
        command(**kwargs, values=values)

    wrapper.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params} | {"return": own.return_annotation}
    return wrapper


@_with_spec_options
def profile(
    script: Annotated[str, typer.Argument(help="The training script, run as __main__ (as `python SCRIPT`).")],
    args: Annotated[Optional[list[str]], typer.Argument(help="The script's own arguments.")] = None,
    env: Annotated[Optional[list[str]], typer.Option(
        help="NAME=VALUE set for the script in every rank; repeat for several (e.g. --env ITERATIONS=200).")] = None,
    *, values: dict[str, Any],
) -> None:
    """Profile any training script, unmodified: its steps and phases found, its collectives recorded, a golfprof
    run directory written (docs/profiling-scripts.md)."""
    from .script_launch import profile as run_profile

    spec = ScriptSpec(script=script, args=list(args or []), env=parse_env(list(env or [])),
                      command=shlex.join(["golfprof", *sys.argv[1:]]), **O.launch_values(_OPTIONS, values))
    result = run_profile(spec)
    if result.code != 0:
        print(f"error: {result.error}", file=sys.stderr)
        raise typer.Exit(1 if result.code > 0 else result.code)
    print_result(result.summary or {}, result.run_dir)


def _fmt(v: Any, digits: int = 2) -> str:
    return "—" if v is None else f"{v:,.{digits}f}" if isinstance(v, (int, float)) else str(v)


def print_result(s: dict[str, Any], run_dir: Any) -> None:
    """The headline figures, the collectives per step, and where the run directory is."""
    console = Console(width=None if sys.stdout and sys.stdout.isatty() else 200)
    t = Table(title=f"{s['variant']} · script · world {s['world_size']} · {s['device']} · {s['script']['ended']}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [("steps", s["steps"], 0), ("ms/step (median, timed steps)", s["ms_per_step"], 2),
            ("optimizer ms", s["optimizer_ms"], 3), ("forward+backward ms", s["forward_backward_ms"], 2),
            ("tokens/step", s["tokens_per_step"], 0), ("tokens/s", s["tokens_per_s"], 0),
            ("peak memory MB", s["peak_memory_mb"], 0), ("final loss", s["final_loss"], 4)]
    for name, v, digits in rows:
        t.add_row(name, _fmt(v, digits))
    t.add_row("attention", s.get("attention_used") or "—")
    console.print(t)
    if s.get("collectives_per_step"):
        c = Table(title="collectives per timed step (recorded as issued)")
        for col in ("op", "dtype", "phase", "count", "bytes"):
            c.add_column(col, justify="left" if col in ("op", "dtype", "phase") else "right")
        for row in s["collectives_per_step"]:
            c.add_row(row["op"], row["dtype"] or "—", row["phase"] or "—", _fmt(row["count_per_step"], 1),
                      _fmt(row["bytes_per_step"], 0))
        console.print(c)
    prediction = s.get("prediction")
    if prediction is not None:
        console.print(f"PREDICTED at world {prediction['world_size']} ({prediction['nodes']} node(s)), "
                      f"{prediction['comm_model']['name']}: {_fmt(prediction['ms_per_step'])} ms/step, exposed comm "
                      f"{_fmt(prediction['exposed_comm_ms'])} ms (simulated/predicted.json)", highlight=False)
    if s.get("simulated"):
        console.print(f"note: {s['simulated']['note']}; every communication figure above is predicted",
                      highlight=False)
    from golfprof.results.health import run_notes

    for note in [*(s.get("notes") or []), *run_notes(s)]:  # the window check, a GPU that throttled
        console.print(f"note: {note}", highlight=False)
    console.print(f"run directory: {run_dir}", highlight=False)


def register(app: typer.Typer) -> None:
    """`golfprof profile` on the CLI's app."""
    app.command("profile", context_settings=CONTEXT)(profile)
