"""The main job installs light: training needs none of the test extras (issue 17)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("traceinsight", "triton", "pytest", "psutil", "jupyterlab")

# A training run, with every package of the test extras made unimportable.
BLOCKED_RUN = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("not installed: " + name)
sys.meta_path.insert(0, Block())
sys.argv = ["golfprof", *sys.argv[1:]]
from golfprof.cli import main
main()
"""


def test_main_dependencies_hold_nothing_heavy():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    def names(requirements: list[str]) -> set[str]:
        return {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requirements}

    assert not names(project["dependencies"]) & set(HEAVY), project["dependencies"]
    assert {"traceinsight", "triton"} <= names(project["optional-dependencies"]["test"])


def test_train_runs_without_the_test_extras(tmp_path):
    code = BLOCKED_RUN.format(blocked=(*HEAVY, "hta", "yaml"))
    r = subprocess.run([sys.executable, "-c", code, "train", "--preset", "tiny", "--steps", "3", "--quiet",
                        "--compile", "off", "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "summary.json").is_file()
