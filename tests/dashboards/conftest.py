from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from typer.testing import Result

from tests.cli import invoke
from tests.dashboards import dash_synth

GPU_RUN = Path(__file__).resolve().parents[1] / "data" / "gpu_traces" / "h100_full_explicit_banks"


@pytest.fixture(scope="session")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two variants × two repeats on two ranks, with traces holding NCCL kernels."""
    return dash_synth.write_matrix(tmp_path_factory.mktemp("runs") / "matrix-synthetic")


@pytest.fixture(scope="session")
def series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Five successive single-GPU runs; the fourth is 21% slower (optimizer 25% slower)."""
    return dash_synth.write_series(tmp_path_factory.mktemp("series"), [100, 101, 99.5, 121, 100.5],
                                   [10, 10.1, 9.9, 12.5, 10])


@pytest.fixture
def gpu_run() -> Path:
    """A real run: one H100, full preset, 30 steps, a three-step trace (recorded for golfprof.traces)."""
    if not (GPU_RUN / "summary.json").exists():
        pytest.skip(f"recorded GPU run not found at {GPU_RUN}")
    return GPU_RUN


@pytest.fixture
def cli() -> Callable[..., Result]:
    return lambda *args: invoke("dashboard", *args)
