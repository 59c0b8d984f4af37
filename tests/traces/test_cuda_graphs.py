"""CUDA-graph replays on a real trace: the triton orthogonalizer's one-graph optimizer on one H100.

`h100_full_triton_graph_1mb` (benchmarks/device/h100_trace_triton.sh) replays one CUDA graph per
step holding every bank's Newton–Schulz chain on two streams. Kineto links each replayed kernel to
the host's `cudaGraphLaunch`, so all of them must land in the phase that replayed the graph; the
two streams overlap, so the phase's kernel time exceeds its busy (union) time. Against
`h100_full_compiled_1mb` (same preset, tokens per step and steps, torch orthogonalizer) `golfprof
diff` must name exactly the orthogonalize phases that changed and the Triton kernels that appeared.
"""

from __future__ import annotations

import json

import pytest

from golfprof.profiler import phases as ph
from tests.cli import invoke
from tests.traces.trace_dirs import GPU_TRACES

GRAPH = GPU_TRACES / "h100_full_triton_graph_1mb"
TORCH = GPU_TRACES / "h100_full_compiled_1mb"
ALL_BANKS = ph.bank_orthogonalize(ph.ALL_BANKS)
BANKS = ("qo_bank", "kv_bank", "mlp_up_bank", "mlp_down_bank")

pytestmark = pytest.mark.skipif(not (GRAPH / "summary.json").exists(), reason=f"{GRAPH} not recorded")


def _json(*args: str) -> dict:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_replayed_kernels_land_in_the_phase_that_replayed_the_graph():
    rank = _json("analyze", str(GRAPH))["ranks"][0]
    phase = rank["phases"][ALL_BANKS]
    # per step: 4 fused momentum kernels, per bank 5 steps x 3 products, and each bank's norm
    # (torch's reduction: one or two kernels; two here)
    assert 4 + 4 * 15 + 4 <= phase["kernels"] <= 4 + 4 * 15 + 8, phase
    assert phase["gpu_kernel_ms"] > 1.2 * phase["gpu_busy_ms"] > 0.5, phase  # two streams overlapped
    assert rank["phases"][ph.UPDATE_APPLY]["kernels"] == 3 * len(BANKS)  # no replayed kernel leaks out
    assert all(ph.bank_orthogonalize(b) not in rank["phases"] for b in BANKS)


def test_diff_against_the_torch_orthogonalizer_names_what_changed():
    out = _json("diff", str(TORCH), str(GRAPH))
    (r,) = out["ranks"]
    phases = {p["phase"]: p for p in r["phases"]}
    assert ALL_BANKS in phases and all(ph.bank_orthogonalize(b) in phases for b in BANKS)
    appeared = {k["kernel"] for k in r["kernels"]["appeared"]}
    assert {"_syrk_kernel", "_update_kernel", "_momentum_kernel"} <= appeared, appeared
