"""Fixtures shared across the test packages."""

from __future__ import annotations

import os

# One intra-op thread for torch in every process a test starts (golfprof's launcher gives its ranks the same):
# the tiny models gain nothing from a second thread, and on a 2-core machine two threads per process spin against
# the suite's other processes (a 3.7 s in-process run took 8.8 s beside one busy process; 5.3 s with one thread).
# This process keeps its cores (test_fp8's emulated FP8 matmuls take twice as long on one thread) except while
# background subprocesses run (_BACKGROUND below), or its cores' share under pytest-xdist (.ci/run runs two
# workers on two cores: with two threads each, a 7 s test took 39). Set before torch is first imported.
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_THREADS = max(1, _CORES // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(_THREADS)

from golfprof.model.config import TINY_MODEL  # noqa: E402
from golfprof.model.synthetic import write_synthetic_dataset  # noqa: E402


@pytest.fixture(scope="session")
def tiny_train_shards(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Synthetic train shards for the tiny preset (40k tokens): the distributed tests' data."""
    out = tmp_path_factory.mktemp("tiny_shards")
    return write_synthetic_dataset(out, TINY_MODEL.vocab_size, 40_000, 2_000, seed=0)["train"]


# Triton-interpreter subprocesses (one core's work each) started in the background while the suite runs
# single-process tests, which leave the other core idle: from tests/dashboards/ on (the multi-process, signal and
# timing tests of ablations/ and bench/ come before), and waited for as tests/model/ begins (test_data.py and
# test_prefetch.py time themselves). Each: (the test files that use it, its module, which has start/wait/stop).
_BACKGROUND_FROM, _BACKGROUND_UNTIL = ("tests/dashboards/", "tests/golfprof/"), "tests/model/"
_BACKGROUND = [
    (("tests/model/test_ce_triton.py", "tests/model/test_mlp_triton.py", "tests/model/test_kernel_choice.py"),
     "tests.model.fused_interp"),
    (("tests/model/test_ortho_triton.py",), "tests.model.test_ortho_triton"),
    (("tests/model/test_ortho_set.py",), "tests.model.test_ortho_set"),
]


def pytest_runtest_setup(item: pytest.Item) -> None:
    import importlib

    session = item.session
    if item.nodeid.startswith(_BACKGROUND_FROM) and not hasattr(session, "_golfprof_background"):
        import importlib.util

        session._golfprof_background = [  # type: ignore[attr-defined]
            importlib.import_module(module) for users, module in _BACKGROUND
            if importlib.util.find_spec("triton") and any(i.nodeid.startswith(users) for i in session.items)]
        for module in session._golfprof_background:  # type: ignore[attr-defined]
            module.start()
        if session._golfprof_background:  # type: ignore[attr-defined]
            torch.set_num_threads(1)  # the cores are shared with them until they end
    if item.nodeid.startswith(_BACKGROUND_UNTIL) and getattr(session, "_golfprof_background", None):
        for module in session._golfprof_background:  # type: ignore[attr-defined]
            try:
                module.wait()
            except Exception:  # noqa: BLE001 - a failure belongs to the tests that use it (they call wait again)
                pass
        session._golfprof_background = []  # type: ignore[attr-defined]
        torch.set_num_threads(_THREADS)


def pytest_sessionfinish(session: pytest.Session) -> None:
    import sys

    for _, module in _BACKGROUND:
        if module in sys.modules:
            sys.modules[module].stop()
