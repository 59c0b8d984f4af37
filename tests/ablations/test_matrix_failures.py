"""A matrix with failed runs: exit 1 naming them and their logs, and no variant labelled as the baseline when it
is not (issue 17). The failing run is planted by the launcher; the others train for real, in this process."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from golfprof.ablations import matrix
from golfprof.model.train import DistInfo
from golfprof.profiler.rundir import RunDir
from tests.cli import invoke


def _launcher(failing: str):
    def launch(spec, nproc: int) -> tuple[int, str | None]:
        from golfprof.ablations.launch import run_joined

        if spec.run.variant == failing:
            RunDir(spec.run_dir).launch_stderr.parent.mkdir(parents=True)
            RunDir(spec.run_dir).launch_stderr.write_text("Traceback ...\nRuntimeError: injected failure\n")
            return 1, "rank 0: RuntimeError: injected failure"
        run_joined(spec, DistInfo())
        return 0, None
    return launch


@pytest.mark.parametrize("failing", ["explicit_banks", "eager"])
def test_a_failed_run_fails_the_matrix_and_only_the_baseline_is_labelled_so(failing, tmp_path, monkeypatch):
    monkeypatch.setattr(matrix, "run_matrix", functools.partial(matrix.run_matrix, launcher=_launcher(failing)))
    r = invoke("ablate", "--variant", "explicit_banks", "--variant", "eager", "--preset", "tiny", "--steps", "4",
               "--compile", "off", "--bf16", "none", "--quiet", "--profile-steps", "off", "--warmup-steps", "1",
               "--runs-dir", tmp_path / "runs", "--data-dir", tmp_path / "data", "--matrix-dir", tmp_path / "m")
    assert r.exit_code == 1, r.output
    logs = Path(tmp_path / "m" / f"{failing}-r0" / "launch_logs")
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [f"error: 1 of 2 runs failed: {failing}-r0 (logs: {logs}); re-run the same command to retry them"]
    eager_rows = [ln for ln in r.stdout.splitlines() if ln.lstrip("│ ").startswith("eager ")]
    assert eager_rows and not any("(baseline)" in ln for ln in eager_rows), r.stdout
    if failing == "explicit_banks":
        assert "baseline explicit_banks: no run completed, so no variant is compared with it" in r.stdout
        assert all("(not compared: no baseline runs)" in ln for ln in eager_rows)
