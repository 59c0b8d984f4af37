"""Every command's options as plain data (typer vendors click, so duck-typed): the table the CLI is compared with
(see test_cli_options)."""

from __future__ import annotations

from typing import Any

import typer.main


def _param(p: Any) -> dict[str, Any]:
    default = p.default
    if isinstance(default, (list, tuple)):
        default = list(default)
    elif default is not None and not isinstance(default, (str, int, float, bool)):
        default = str(default)
    return {
        "name": p.name,
        "opts": list(p.opts) + list(getattr(p, "secondary_opts", [])),
        "kind": p.param_type_name,
        "default": default,
        "required": p.required,
        "multiple": bool(getattr(p, "multiple", False)),
        "hidden": bool(getattr(p, "hidden", False)),
        "help": getattr(p, "help", None),
        "type": str(getattr(p.type_descriptor, "annotation", "")),
        "flag": bool(getattr(p, "is_flag", False)),
    }


def option_table() -> dict[str, Any]:
    """{'golfprof ablate': {'help': ..., 'params': [...]}, ...} for every command and group."""
    from golfprof.cli import app

    root = typer.main.get_command(app)
    out: dict[str, Any] = {}

    def walk(cmd: Any, path: str) -> None:
        out[path] = {"help": cmd.help, "params": [_param(p) for p in cmd.params]}
        if hasattr(cmd, "commands"):
            for name, sub in sorted(cmd.commands.items()):
                walk(sub, f"{path} {name}")

    walk(root, "golfprof")
    return out


if __name__ == "__main__":
    import json
    import sys

    json.dump(option_table(), sys.stdout, indent=1, sort_keys=True)
    print()
