"""Derived trace columns (steps, launches, phases) are computed once per trace and shared."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from golfprof.dashboards import timeline
from golfprof.profiler.names import DEFAULT_PHASE_REGEX
from golfprof.traces import derived
from golfprof.traces.load import load_trace
from golfprof.traces.ranks import summary_and_kernels
from tests.traces.kineto_synth import TraceBuilder
from tests.traces.test_attribute import full_step

PATTERN = re.compile(DEFAULT_PHASE_REGEX)


def test_summary_kernel_table_and_timeline_share_one_derivation(tmp_path: Path, monkeypatch) -> None:
    b = TraceBuilder()
    full_step(b, 0, 1)
    full_step(b, 10000, 2)
    trace = load_trace(b.write(tmp_path / "rank0.json"))
    calls = {"work": 0, "phases": 0}
    real_work, real_phases = derived.compute_work, derived.compute_phases

    def count(kind, fn):
        def wrapped(*a, **k):
            calls[kind] += 1
            return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(derived, "compute_work", count("work", real_work))
    monkeypatch.setattr(derived, "compute_phases", count("phases", real_phases))
    summary, kernels = summary_and_kernels(trace, 0, PATTERN)
    rt = timeline.load_rank(trace, 0, PATTERN)
    assert calls == {"work": 1, "phases": 1}
    timeline.load_rank(trace, 0, re.compile("^golfprof/step$"))
    assert calls == {"work": 1, "phases": 2}  # the phase columns are per regex, the rest is not
    # one attribution: the timeline's phase of each kernel is the one the summary's phase table counts
    per_phase = rt.gpu[rt.gpu["in_step"]].groupby("phase")["dur"].sum() / 1e3 / 2
    assert per_phase.pop(derived.NO_PHASE) == pytest.approx(summary.unattributed_gpu_ms)
    assert len(per_phase) == 6  # phases that launched work themselves (not only through a child)
    for name, ms in per_phase.items():
        assert summary.phases.loc[name, "gpu_self_ms"] == pytest.approx(ms), name
    assert np.isclose(kernels["ms_per_step"].sum(), rt.gpu.loc[rt.gpu["cls"] != 0, "dur"].sum() / 1e3 / 2)
