from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from typer.testing import Result

from tests.cli import invoke
from tests.traces.trace_dirs import PUBLIC


@pytest.fixture
def public() -> Path:
    if not PUBLIC.is_dir():
        pytest.skip(f"public traces not found at {PUBLIC}")
    return PUBLIC


@pytest.fixture
def cli() -> Callable[..., Result]:
    def run(*args: Any) -> Result:
        argv = ["analyze", *map(str, args)]
        return invoke(*(argv if "--jobs" in argv else [*argv, "--jobs", "1"]))

    return run


@pytest.fixture
def analyze_json(cli: Callable[..., Result]) -> Callable[..., dict[str, Any]]:
    def run(*args: Any) -> dict[str, Any]:
        result = cli(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    return run
