"""Ctrl-C ends golfprof with one `interrupted:` line and exit 130 however library code mishandles it
(golfprof/interrupts.py): the three ways seen, planted with GOLFPROF_TEST_CTRL_C in real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from golfprof import faults, interrupts

TINY = ["train", "--preset", "tiny", "--compile", "off", "--bf16", "none", "--quiet", "--profile-steps", "off",
        "--steps", "2", "--device", "cpu"]


def test_a_ctrl_c_anywhere_in_the_chain_is_one(monkeypatch):
    monkeypatch.setattr(interrupts, "_requested", False)
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as ki:
            raise RuntimeError("wrapped") from ki
    except RuntimeError as e:
        assert interrupts.caused_by_ctrl_c(e)
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("while handling it")  # noqa: B904 - the implicit context is what is checked
    except ValueError as e:
        assert interrupts.caused_by_ctrl_c(e)
    assert not interrupts.caused_by_ctrl_c(ValueError("unrelated"))
    monkeypatch.setattr(interrupts, "_requested", True)
    assert interrupts.caused_by_ctrl_c(ValueError("after a recorded Ctrl-C"))


def test_a_command_that_ended_after_a_recorded_ctrl_c_exits_130(monkeypatch, capsys):
    monkeypatch.setattr(interrupts, "_requested", False)
    assert interrupts.settle(0) == 0 and interrupts.settle(2) == 2
    monkeypatch.setattr(interrupts, "_requested", True)
    assert interrupts.settle(2) == 2 and interrupts.settle(None) == 130
    assert interrupts.settle(0) == 130 and "the command ran to its end" in capsys.readouterr().err


@pytest.fixture(scope="module")
def ctrl_c_runs(tmp_path_factory) -> dict[str, tuple[int, str, Path]]:
    """One golfprof process per way, all started at once: each waits in its planted code for the Ctrl-C it gets."""
    root = tmp_path_factory.mktemp("ctrl_c")
    procs = {}
    for how in ("swallowed", "wrapped", "c_exec"):
        env = {**os.environ, faults.CTRL_C: how, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "golfprof.cli", *TINY, "--runs-dir", str(root / how / "runs"),
               "--data-dir", str(root / how / "data")]
        procs[how] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {}
    for how, p in procs.items():
        err = []
        for line in p.stderr:  # the planted code says when it waits
            err.append(line)
            if faults.WAITING_FOR_CTRL_C in line:
                p.send_signal(signal.SIGINT)
                break
        _, rest = p.communicate(timeout=120)
        out[how] = (p.returncode, "".join(err) + rest, root / how / "runs")
    return out


@pytest.mark.parametrize("how", ["swallowed", "wrapped", "c_exec"])
def test_a_mishandled_ctrl_c_still_exits_130_with_one_line(ctrl_c_runs, how):
    code, err, runs = ctrl_c_runs[how]
    assert code == 130, (code, err[-2000:])
    lines = [ln for ln in err.splitlines() if ln.startswith("interrupted:")]
    assert len(lines) == 1, err[-2000:]
    finished = [d for d in runs.iterdir() if (d / "summary.json").is_file()] if runs.is_dir() else []
    if how == "wrapped":  # stopped where the Ctrl-C landed: no traceback of the library's error
        assert "RuntimeError" not in err and "Traceback" not in err and not finished
    else:  # the Ctrl-C was lost inside library code: the run went on to its end and says so
        assert "the command ran to its end" in lines[0] and len(finished) == 1


def test_a_ctrl_c_before_the_handler_is_installed_is_one_line_too(tmp_path):
    """The handler's own import is the first thing `golfprof`'s entry does; a Ctrl-C there (seen once under load:
    a traceback and exit -2) is Python's KeyboardInterrupt, planted here by an import hook."""
    plant = ("import runpy, sys\n"
             "class Stop:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name == 'golfprof.interrupts':\n"
             "            raise KeyboardInterrupt\n"
             "sys.meta_path.insert(0, Stop())\n"
             "sys.argv = ['golfprof', *sys.argv[1:]]\n"
             "runpy.run_module('golfprof', run_name='__main__', alter_sys=True)\n")
    r = subprocess.run([sys.executable, "-c", plant, *TINY], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert (r.returncode, r.stderr) == (130, "interrupted: golfprof stopped by Ctrl-C while starting\n"), r.stderr
