"""Interpreter subprocesses a test module starts early and reads late (tests/conftest.py starts them in the
background while the suite runs single-process tests): one definition of start, wait and stop."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Callable


def interpreter_env() -> dict[str, str]:
    """Triton's interpreter, and this process's import path (golfprof from this checkout)."""
    return dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


class Background:
    """Processes made by ``argvs()`` (a list of argv lists, built when started), started once, waited for once;
    ``done`` holds each one's (exit status, stdout, stderr) after ``wait``."""

    def __init__(self, argvs: Callable[[], list[list[str]]], timeout: float) -> None:
        self.argvs, self.timeout = argvs, timeout
        self.started: list[subprocess.Popen] = []
        self.done: list[tuple[int, str, str]] = []

    def start(self) -> None:
        """Start them without waiting (a second call does nothing)."""
        if not self.started:
            env = interpreter_env()
            self.started.extend(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                                 env=env) for argv in self.argvs())

    def wait(self) -> None:
        """Wait for them (started now if they were not), keeping their exit status and output."""
        self.start()
        if not self.done:
            try:
                outs = [proc.communicate(timeout=self.timeout) for proc in self.started]
            finally:
                self.stop()
            self.done.extend((proc.returncode, out, err) for proc, (out, err) in zip(self.started, outs))

    def stop(self) -> None:
        """End those still running (a run stopped early, a -k selection)."""
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
