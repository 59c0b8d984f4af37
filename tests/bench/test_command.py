"""The bench commands' module: `python -m golfprof.bench.ortho` is the typer app the device scripts call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from golfprof.bench.command import ortho_script
from golfprof.errors import ConfigError


def _module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "golfprof.bench.ortho", *args], capture_output=True, text=True,
                          timeout=120)


def test_the_device_script_entry_has_its_three_commands():
    r = _module("--help")
    assert r.returncode == 0, r.stderr
    assert all(name in r.stdout for name in ("bench", "sweep", "check"))


def test_bad_input_to_the_device_script_is_one_error_line():
    r = _module("bench", "--device", "cpu", "--kernels", "nope")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: --kernels 'nope': choose from torch, triton, triton_set, triton_set2, triton_pdl, triton_eager"]


def test_bench_reads_the_sweep_configs_before_the_golfprof_bench_ortho_checks(tmp_path: Path):
    r = CliRunner().invoke(ortho_script, ["bench", "--configs", str(tmp_path / "none.json"), "--device", "cpu",
                                          "--reps", "0"])
    assert "none.json missing: built-in configs" in r.output
    assert isinstance(r.exception, ConfigError) and "--reps must be >= 1" in str(r.exception)
