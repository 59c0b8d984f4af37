"""The two ways tests drive golfprof's CLI: in-process through the app (fast), or as a real process
(signals, torchrun, exit codes as a shell sees them). Both check that no traceback reaches the user."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from typer.testing import CliRunner, Result


def invoke(*args: Any) -> Result:
    """``golfprof ARGS`` in this process; errors must arrive as SystemExit, never as a traceback."""
    from golfprof.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def run(*args: Any, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``golfprof ARGS`` as a child process with the given extra environment."""
    return subprocess.run([sys.executable, "-m", "golfprof.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
