from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
import typer
from typer.testing import CliRunner, Result

from tests.traces.trace_dirs import PUBLIC

from golfprof.traces.command import analyze


@pytest.fixture
def public() -> Path:
    if not PUBLIC.is_dir():
        pytest.skip(f"public traces not found at {PUBLIC}")
    return PUBLIC


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("analyze")(analyze)

    @app.command("version")
    def version() -> None:  # a second command keeps "analyze" a subcommand, as in golfprof's CLI
        pass

    return app


@pytest.fixture
def cli() -> Callable[..., Result]:
    runner = CliRunner()
    app = _app()

    def run(*args: Any) -> Result:
        argv = ["analyze", *map(str, args)]
        result = runner.invoke(app, argv if "--jobs" in argv else [*argv, "--jobs", "1"])
        assert "Traceback" not in result.output
        if result.exit_code != 0:
            assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
                result.exception
            )
        return result

    return run


@pytest.fixture
def analyze_json(cli: Callable[..., Result]) -> Callable[..., dict[str, Any]]:
    def run(*args: Any) -> dict[str, Any]:
        result = cli(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    return run
