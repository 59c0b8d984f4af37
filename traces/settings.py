"""What two golfprof runs were run with, and how that differs: `diff` names it before its figures.

A diff compares what was changed on purpose (toggles, the variant, the code) and should say so; a difference
elsewhere (preset, steps, world, device, torch) makes the per-step figures unlike, and the user must be warned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from golfprof.profiler.rundir import RunDir

# What a diff exists to compare: named in a note.
_COMPARED = ("toggles.", "variant", "env.git_", "script.")
# Bookkeeping that differs between any two runs and changes no figure.
_IGNORED = ("launch.run_dir", "launch.runs_dir", "launch.data_dir", "launch.command", "launch.quiet",
            "launch.stall_timeout", "env.hostname", "env.started", "env.python")


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return out


def run_settings(path: Path) -> dict[str, Any] | None:
    """config.json and env.json of a golfprof run directory, flattened (None: not one, or unreadable)."""
    rd = RunDir(path)
    if not Path(path).is_dir() or not rd.config.is_file():
        return None
    try:
        config = rd.read_config()
        env = rd.read_env() if rd.env.is_file() else {}
    except (OSError, ValueError):
        return None
    return _flat({**config, "env": env})


def _ignored(key: str) -> bool:
    return key.startswith(_IGNORED)


def _show(v: Any) -> str:
    text = "-" if v is None else str(v)
    return text if len(text) <= 40 else text[:37] + "..."


def differences(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(compared, unlike): 'key A → B' for each setting that differs, split into what a diff is for and what
    makes the figures unlike."""
    compared, unlike = [], []
    for key in sorted(set(a) | set(b)):
        if _ignored(key) or a.get(key) == b.get(key):
            continue
        line = f"{key} {_show(a.get(key))} → {_show(b.get(key))}"
        (compared if key.startswith(_COMPARED) else unlike).append(line)
    return compared, unlike


# A profiled script's run and a golfprof trainer's share no model or toggle fields: the script's are its own code.
_PROGRAM = ("script.", "toggles.", "model.", "train.", "preset", "variant", "launch.")


def _program(s: dict[str, Any]) -> str:
    path = s.get("script.path")
    return f"the script {Path(str(path)).name}" if path else f"golfprof's trainer ({s.get('variant', '?')})"


def difference_lines(path_a: Path, path_b: Path) -> list[tuple[str, str]]:
    """(kind, text) lines for `diff` to print: 'note' for the compared settings, 'warning' for unlike ones. A
    script's run against a golfprof trainer's compares two programs: their own settings are not listed field by
    field (none match), the environment's still are."""
    a, b = run_settings(path_a), run_settings(path_b)
    if a is None or b is None:
        return []
    head = []
    if ("script.path" in a) != ("script.path" in b):
        head = [("note", f"A is {_program(a)}, B {_program(b)}: two programs, whose own settings are not compared")]
        a, b = ({k: v for k, v in d.items() if not k.startswith(_PROGRAM)} for d in (a, b))
    compared, unlike = differences(a, b)
    out = head
    if compared:
        out.append(("note", "A and B differ in " + "; ".join(compared)))
    if unlike:
        out.append(("warning", "A and B were run with different settings, so their figures are not like for "
                               "like: " + "; ".join(unlike)))
    return out
