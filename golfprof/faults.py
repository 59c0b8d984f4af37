"""Test-only fault injection, read in one place: never a run option, never in a config.

The launcher's and the regression gate's tests need real failures: a rank that raises, a rank
killed as the OOM killer kills, a planted slowdown in the optimizer phase. They are asked for
through the environment (inherited by torchrun's ranks), or through ``RunSpec.extra["faults"]``
for one run of a matrix.
"""

from __future__ import annotations

import os
import signal
from typing import Any

FAIL_RANK = "GOLFPROF_TEST_FAIL_RANK"
KILL_RANK = "GOLFPROF_TEST_KILL_RANK"
OPTIMIZER_DELAY_MS = "GOLFPROF_TEST_OPTIMIZER_DELAY_MS"
HOLD_AFTER_RUN_S = "GOLFPROF_TEST_HOLD_AFTER_RUN_S"  # a rank lingers after its run completed (signals in teardown)
CTRL_C = "GOLFPROF_TEST_CTRL_C"  # how library code mishandles a Ctrl-C: swallowed | wrapped | c_exec (interrupts.py)
WAITING_FOR_CTRL_C = "golfprof-test: waiting for Ctrl-C"

_planted: dict[str, Any] = {}


def configure(faults: dict[str, Any] | None) -> None:
    """This process's planted faults (``RunSpec.extra["faults"]``), over the environment's."""
    _planted.clear()
    _planted.update(faults or {})


def optimizer_delay_ms() -> float:
    """Milliseconds to sleep inside the optimizer phase each step (0: none)."""
    return float(_planted.get("optimizer_delay_ms", os.environ.get(OPTIMIZER_DELAY_MS, 0)) or 0)


def at_rank_start(rank: int) -> None:
    """Fail or die here when a test asked this rank to."""
    if os.environ.get(FAIL_RANK) == str(rank):
        raise RuntimeError("injected failure")
    if os.environ.get(KILL_RANK) == str(rank):
        os.kill(os.getpid(), signal.SIGKILL)


def after_run(rank: int) -> None:
    """Linger once the run is complete (its summary written) when a test asked this rank to: the window in which
    a signal must not turn a finished run into a failed one."""
    import time

    seconds = float(os.environ.get(HOLD_AFTER_RUN_S, 0) or 0)
    if seconds > 0 and rank == 0:
        time.sleep(seconds)


def mishandled_ctrl_c() -> None:
    """When a test asks: print WAITING_FOR_CTRL_C and wait (60 s at most) inside code that mishandles a Ctrl-C as
    library code was seen to: swallowed (caught and dropped), wrapped (re-raised as another error), or c_exec (run
    through the C API's PyRun_SimpleString, which prints it and goes on, as a C extension's Python code would)."""
    import sys
    import time

    how = os.environ.get(CTRL_C)
    if not how:
        return
    if how == "c_exec":  # the line printed inside, so that the Ctrl-C it asks for lands there
        import ctypes

        code = f"import sys, time\nprint({WAITING_FOR_CTRL_C!r}, file=sys.stderr, flush=True)\n" \
               "for _ in range(600):\n    time.sleep(0.1)\n"
        ctypes.pythonapi.PyRun_SimpleString(code.encode())
        return
    try:
        print(WAITING_FOR_CTRL_C, file=sys.stderr, flush=True)  # inside: the Ctrl-C it asks for lands in the try
        for _ in range(600):
            time.sleep(0.1)
    except KeyboardInterrupt as e:
        if how == "wrapped":
            raise RuntimeError("a library's own error, raised while handling the Ctrl-C") from e
