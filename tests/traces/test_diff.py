"""`golfprof diff`: planted differences are named exactly, self-diffs are empty, and the kernel
sets agree with HolisticTraceAnalysis's TraceDiff where the two answer the same question."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from golfprof.profiler import phases as ph
from golfprof.traces.kernels import name_pattern
from tests.cli import invoke
from tests.traces.kineto_synth import AUTOGRAD_TID, TraceBuilder, golfprof_meta
from tests.traces.trace_dirs import GPU_TRACES


def _run(root: Path, planted: bool) -> Path:
    for rank in range(2):
        b = TraceBuilder(rank=rank, world_size=2, golfprof=golfprof_meta(rank, 2))
        for n in range(3):
            s = n * 10000.0
            b.step(n, s, 10000)
            b.cpu(ph.STEP, s + 5, 9900)
            b.cpu(ph.FORWARD, s + 10, 3000)
            b.kernel("gemm_fwd", s + 20, s + 30, 1200)
            b.cpu(ph.BACKWARD, s + 3100, 3000)
            b.kernel("gemm_bwd", s + 3110, s + 3200, 1500, tid=AUTOGRAD_TID)
            b.cpu(ph.OPTIMIZER, s + 6200, 3000)
            b.nccl("reduce_scatter", s + 6300, s + 6400, 500)
            b.kernel("ns_step", s + 6310, s + 6950, 700)
            if planted:
                b.kernel("triton_poi_fused_planted_7", s + 6320, s + 7700, 90)
                b.nccl("all_gather", s + 6330, s + 7800, 300)
        b.write(root / "trace" / f"rank{rank}.pt.trace.json.gz")
    return root


def _diff(a: Path, b: Path) -> dict:
    r = invoke("diff", a, b, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_planted_kernel_and_collective_are_named_exactly(tmp_path):
    base, planted = _run(tmp_path / "a", False), _run(tmp_path / "b", True)
    out = _diff(base, planted)
    assert [r["rank"] for r in out["ranks"]] == [0, 1]
    for r in out["ranks"]:
        k = r["kernels"]
        assert [x["kernel"] for x in k["appeared"]] == ["triton_poi_fused_planted"]
        assert k["appeared"][0]["count_per_step_b"] == 1 and k["appeared"][0]["ms_per_step_b"] == 0.09
        assert k["vanished"] == [] and k["changed"] == []
        assert [(c["op"], c["count_delta"]) for c in r["collectives"]] == [("all_gather", 1.0)]
        moved = {p["phase"] for p in r["phases"] if abs(p["gpu_busy_ms_delta"]) > 0}
        assert ph.OPTIMIZER in moved and ph.FORWARD not in moved and ph.BACKWARD not in moved
    reverse = _diff(planted, base)["ranks"][0]["kernels"]
    assert [x["kernel"] for x in reverse["vanished"]] == ["triton_poi_fused_planted"]


@pytest.mark.parametrize("path", [None, *sorted(p for p in GPU_TRACES.glob("*") if p.is_dir())],
                         ids=lambda p: "synthetic" if p is None else p.name)
def test_a_run_against_itself_is_empty(path, tmp_path):
    path = path or _run(tmp_path / "a", True)
    out = _diff(path, path)
    assert out["empty"] and all(r["phases"] == [] and r["collectives"] == [] for r in out["ranks"])
    text = invoke("diff", path, path).stdout
    assert "no difference" in text


def test_name_patterns():
    assert name_pattern("void at::native::elementwise_kernel<128, 2>(int, float)") == "at::native::elementwise_kernel"
    assert name_pattern("triton_poi_fused_add_mul_3") == "triton_poi_fused_add_mul"
    assert name_pattern("nvjet_hsh_192x192_64x4_2x1_v_bz_coopB_TNN") == "nvjet_hsh_#x#_#x#_#x#_v_bz_coopB_TNN"
    anon = "void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float>(float*, float const*, int)"
    assert name_pattern(anon) == "at::native::cunn_SoftMaxForward"
    assert name_pattern("void (anonymous namespace)::softmax_warp_forward<float>(float*)") == "softmax_warp_forward"


def test_kernel_sets_agree_with_hta_trace_diff():
    """On two real H100 runs (compiled vs eager) the kernels only one side has are the same
    whether golfprof or HTA's TraceDiff is asked (exact names, all profiled steps)."""
    hta_diff = pytest.importorskip("hta.trace_diff")
    logging.getLogger("hta").setLevel(logging.ERROR)
    a, b = GPU_TRACES / "h100_full_compiled_1mb", GPU_TRACES / "h100_full_eager_1mb"
    from golfprof.traces.kernels import kernel_table
    from golfprof.traces.load import load_trace

    ka = kernel_table(load_trace(a / "trace" / "rank0.pt.trace.json.gz"), grouped=False)
    kb = kernel_table(load_trace(b / "trace" / "rank0.pt.trace.json.gz"), grouped=False)
    ours_new, ours_gone = set(kb.kernel) - set(ka.kernel), set(ka.kernel) - set(kb.kernel)
    ta, tb = (hta_diff.LabeledTrace(label="a", trace_dir=str(a / "trace")),
              hta_diff.LabeledTrace(label="b", trace_dir=str(b / "trace")))
    df = hta_diff.TraceDiff.compare_traces(ta, tb, control_iteration=ta.iterations(), test_iteration=tb.iterations(),
                                           device_type=hta_diff.DeviceType.GPU)
    theirs_new = set(df.index[df.a_counts == 0])
    theirs_gone = set(df.index[df.b_counts == 0])
    assert ours_new and ours_gone
    assert ours_new == theirs_new and ours_gone == theirs_gone
