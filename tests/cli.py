"""The two ways tests drive golfprof's CLI: in-process through the app (fast), or as a real process
(signals, torchrun, exit codes as a shell sees them). Both check that no traceback reaches the user."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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


def run_together(cmds: dict[str, tuple[list[str], dict[str, str]]], timeout: float = 300
                 ) -> dict[str, tuple[subprocess.CompletedProcess, float]]:
    """Independent commands (name -> argv, extra environment), all started at once: each one's result and its
    seconds from the common start to when its output was collected (in ``cmds``' order); none is left running."""
    t0 = time.monotonic()
    procs = {name: subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, **env}) for name, (argv, env) in cmds.items()}
    done = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=timeout)
            done[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, out, err), time.monotonic() - t0)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return done
