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


def test_the_readme_trains_on_the_main_install_and_tests_on_the_extras():
    """README line 1 installs what training needs; line 2 (what .ci/run runs, exactly) adds the test extras."""
    block = (ROOT / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    train, test = (line.split("   #")[0].strip() for line in block[:2])
    assert train.startswith("pip install torch==2.13.0 -e . &&") and "[test]" not in train
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()
