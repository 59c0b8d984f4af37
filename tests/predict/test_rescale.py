"""Kernels classified by what bounds them and rescaled for another GPU, on synthetic traces with known FLOPs/bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from golfprof.predict import devices, rescale, shapes
from golfprof.predict.predict import predict
from tests.predict.synth_run import write_run
from tests.traces.kineto_synth import TraceBuilder

DEV = devices.bundled()
H100, H200 = DEV["h100"], DEV["h200"]
N = 4096
GEMM_F, GEMM_B = 2.0 * N**3, 3.0 * N * N * 2
ADD_F, ADD_B = float(N * N), 3.0 * N * N * 2
ADD_STREAM_US = ADD_B / (H200.bw_fraction * H200.hbm_bw) * 1e6  # the add at the H200's achievable bandwidth
DUR = np.array([100.0, 2 * ADD_STREAM_US])  # the GEMM's and the add's measured µs: the add at half that rate
M_ADD = 0.5  # the add's bandwidth share of its measured time


def test_op_shapes_give_gemm_and_elementwise_flops_and_bytes():
    bf16 = 2
    assert shapes.op_work("aten::mm", [([N, N], bf16), ([N, N], bf16)]) == (GEMM_F, GEMM_B)
    linear = shapes.op_work("aten::linear", [([8, 16, 32], bf16), ([64, 32], bf16)])  # weight [N, K]
    assert linear == (2.0 * 128 * 32 * 64, (8 * 16 * 32 + 64 * 32 + 128 * 64) * 2)
    assert shapes.op_work("aten::add", [([N, N], bf16), ([N, N], bf16)]) == (ADD_F, ADD_B)
    f, _ = shapes.op_work("aten::_scaled_dot_product_flash_attention_backward", [([2, 8, 128, 64], 2)] * 4)
    assert f == 2.5 * 4 * 2 * 8 * 128 * 128 * 64


def test_a_compiled_graphs_gemm_with_its_out_tensor_and_cudnn_s_inner_attention_ops():
    """Inductor calls mm(a, b, out=c): the profiler records c as a third input. Its FLOPs come from a and b (not
    from b and c, which made a [98304, 512] x [512, 256] GEMM 192x too small and memory-bound), its result's bytes
    once. cuDNN's kernels launch inside aten::_cudnn_attention_forward/backward; a Triton kernel's own cpu_op
    named after a fused attention backward is an elementwise pass."""
    bf16, m, k, n = 2, 98304, 512, 256
    plain = shapes.op_work("aten::mm", [([m, k], bf16), ([k, n], bf16)])
    assert shapes.op_work("aten::mm", [([m, k], bf16), ([k, n], bf16), ([m, n], bf16)]) == plain
    assert plain == (2.0 * m * k * n, (m * k + k * n + m * n) * bf16)
    assert shapes.op_work("aten::addmm", [([m, n], bf16), ([m, k], bf16), ([k, n], bf16)])[0] == 2.0 * m * k * n
    assert shapes.op_work("aten::addmm", [([n], bf16), ([m, k], bf16), ([k, n], bf16)])[0] == 2.0 * m * k * n
    q, kv = ([48, 8, 2048, 64], bf16), ([48, 4, 2048, 64], bf16)
    fwd, _ = shapes.op_work("aten::_cudnn_attention_forward", [q, kv, kv])
    bwd, _ = shapes.op_work("aten::_cudnn_attention_backward", [q, q, kv, kv, q])
    assert fwd == 4.0 * 48 * 8 * 2048 * 2048 * 64 and bwd == 2.5 * fwd
    name = "triton_per_fused__scaled_dot_product_cudnn_attention_backward__to_copy_add_8"
    assert shapes.op_work(name, [q, q, q])[0] == float(48 * 8 * 2048 * 64)  # one FLOP per element


def _roof(f: float, b: float, src: devices.Device, tgt: devices.Device) -> float:
    return max(f / tgt.peak_flops, b / tgt.hbm_bw) / max(f / src.peak_flops, b / src.hbm_bw)


def test_a_gemm_is_compute_bound_and_an_add_memory_bound_and_they_rescale_differently():
    names = ["nvjet_gemm", "vectorized_elementwise_kernel"]
    f, b = np.array([GEMM_F, ADD_F]), np.array([GEMM_B, ADD_B])
    cls, basis = rescale.classify(names, f, b, H200)
    assert list(cls) == ["compute", "memory"] and list(basis) == ["shapes", "shapes"]
    r = rescale.scale(names, f, b, DUR, H200, H100, rescale.ROOFLINE)
    # the datasheets give both GPUs the same dense bf16 peak: the GEMM does not move, the add takes 4.8/3.35
    np.testing.assert_allclose(r, [1.0, 4.8 / 3.35])
    np.testing.assert_allclose(rescale.scale(names, f, b, DUR, H100, H200, rescale.ROOFLINE) * r, [1.0, 1.0])


def test_h200_to_h100_slows_a_memory_bound_kernel_and_a_gemm_between_the_ridge_points():
    """A GEMM of intensity 250 FLOP/B is compute-bound on the H200 (ridge 206) and memory-bound on the H100
    (ridge 295): both it and the add are slower there, each by its own ratio."""
    names = ["nvjet_skinny", "vectorized_elementwise_kernel"]
    f, b = np.array([250.0 * 1e9, ADD_F]), np.array([1e9, ADD_B])
    cls, _ = rescale.classify(names, f, b, H200)
    assert list(cls) == ["compute", "memory"] and rescale.classify(names, f, b, H100)[0][0] == "memory"
    r = rescale.scale(names, f, b, DUR, H200, H100, rescale.ROOFLINE)
    np.testing.assert_allclose(r, [_roof(250e9, 1e9, H200, H100), 4.8 / 3.35])
    assert 1.0 < r[0] < r[1]


def test_a_compute_bound_kernel_rescales_by_the_peak_flops(tmp_path: Path):
    fast = devices.Device("fast", "fast", ("FAST",), 2 * H200.peak_flops, H200.hbm_bw, 132, None, "test",
                          H200.bw_fraction)
    names = ["nvjet_gemm", "vectorized_elementwise_kernel"]
    for rule in rescale.RULES:
        r = rescale.scale(names, np.array([GEMM_F, ADD_F]), np.array([GEMM_B, ADD_B]), DUR, H200, fast, rule)
        np.testing.assert_allclose(r, [0.5, 1.0] if rule == rescale.ROOFLINE else [0.5, 1.0 - 0.5 * (1 - M_ADD)])


def test_kernels_without_shapes_go_by_name_and_one_ratio():
    names = ["nvjet_sm90_tst_256x128", "triton_poi_fused_add", "void cublasLt::splitKreduce_kernel<32>",
             "cudnn_generated_fort_native_sdpa_sm90_flash_fprop"]
    nan = np.full(4, np.nan)
    cls, basis = rescale.classify(names, nan, nan, H200)
    assert list(cls) == ["compute", "memory", "memory", "compute"] and set(basis) == {"name"}
    for rule in rescale.RULES:
        np.testing.assert_allclose(rescale.scale(names, nan, nan, np.full(4, 10.0), H200, H100, rule),
                                   [1.0, 4.8 / 3.35, 4.8 / 3.35, 1.0])


def test_split_scales_only_a_memory_bound_kernels_bandwidth_part():
    """H200 -> H100 (one die, same peak FLOP/s, equal achievable fractions): an add streaming at the achievable
    bandwidth takes 4.8/3.35 of its time; the same add measured twice as slow (half of it bandwidth) takes
    0.5 + 0.5·4.8/3.35; one four times as slow 0.75 + 0.25·4.8/3.35; the GEMM keeps its time."""
    names = ["nvjet_gemm"] + ["vectorized_elementwise_kernel"] * 3
    f, b = np.array([GEMM_F] + [ADD_F] * 3), np.array([GEMM_B] + [ADD_B] * 3)
    dur = np.array([100.0, ADD_STREAM_US, 2 * ADD_STREAM_US, 4 * ADD_STREAM_US])
    w = 4.8 / 3.35
    r = rescale.scale(names, f, b, dur, H200, H100, rescale.SPLIT)
    np.testing.assert_allclose(r, [1.0, w, 0.5 + 0.5 * w, 0.75 + 0.25 * w])
    assert (r <= rescale.scale(names, f, b, dur, H200, H100, rescale.ROOFLINE) + 1e-12).all()
    fast = devices.Device("fast", "fast", ("F",), H200.peak_flops, H200.hbm_bw, 132, None, "t", bw_fraction=0.5)
    # the target's streaming kernels reach half its peak: the bandwidth part takes 0.8458/0.5 of its time
    np.testing.assert_allclose(rescale.scale(names[1:2], f[1:2], b[1:2], dur[1:2], H200, fast), [0.8458 / 0.5])


def test_a_kernel_faster_than_the_achievable_bandwidth_is_all_bandwidth():
    """L2-resident reads: the measured time is below B/(η·W); the bandwidth part is capped at the whole time."""
    r = rescale.scale(["triton_poi_fused_add"], np.array([ADD_F]), np.array([ADD_B]),
                      np.array([ADD_STREAM_US / 3]), H200, H100)
    np.testing.assert_allclose(r, [4.8 / 3.35])


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="rescale rule 'guess'"):
        rescale.scale(["k"], np.ones(1), np.ones(1), np.ones(1), H200, H100, "guess")


def test_a_kernel_queued_behind_its_predecessor_may_start_at_its_launch():
    from golfprof.predict.replay import RoleStep

    role = RoleStep(launch=np.array([0.0, 1.0, 50.0]), start=np.array([0.0, 10.0, 60.0]),
                    dur=np.array([10.0, 10.0, 10.0]), stream=np.zeros(3, int), issue=np.zeros(0), wait=np.zeros(0),
                    end=70.0)
    out = rescale.target_role(role, np.array([0.5, 0.5, 0.5]))
    np.testing.assert_allclose(out.start, [0.0, 1.0, 60.0])  # the second was queued; the third waited for its launch
    np.testing.assert_allclose(out.dur, [5.0, 5.0, 5.0])


def test_kernel_work_joins_a_kernel_to_the_shaped_op_that_launched_it(tmp_path: Path):
    b = TraceBuilder()
    b.cpu("aten::mm", 10, 10, cat="cpu_op", args={"Input Dims": [[N, N], [N, N]], "Input type": ["c10::BFloat16"] * 2})
    c = b.kernel("nvjet_gemm", 12, 20, 100)
    b.kernel("unshaped_copy", 40, 130, 5)
    w = shapes.kernel_work(b.write(tmp_path / "t.json"))
    assert list(w.index) == [c] and tuple(w.loc[c]) == (GEMM_F, GEMM_B)


def test_a_target_gpu_prediction_rescales_the_played_rank_and_reports_both_sides(tmp_path: Path):
    """A GEMM [0, 100) and an add [100, 150) on an H200, no collectives: on an H100 the GEMM keeps its time (same
    peak FLOP/s), the add takes 4.8/3.35 of it, and the step ends that much later; on the H200 nothing moves."""
    kernels = [("nvjet_gemm", "aten::mm", 5, 0, 100), ("vectorized_elementwise_kernel", "aten::add", 10, 100, 50)]
    run, _ = write_run(tmp_path / "run", kernels, [], end=160)
    p = predict(run, "h200", target_gpu="h100")["prediction"]
    m = ADD_STREAM_US  # the add's bandwidth part (its 50 µs are above it)
    split, roof = [1.0, (50 - m + m * 4.8 / 3.35) / 50], [1.0, 4.8 / 3.35]
    assert p["source_gpu"]["key"] == "h200" and p["ms_per_step"] == pytest.approx(0.160)
    t = p["target"]
    at = {name: (160 + 100 * (r[0] - 1) + 50 * (r[1] - 1)) / 1e3 for name, r in (("split", split), ("roof", roof))}
    assert t["gpu"] == "h100" and t["ms_per_step"] == pytest.approx(at["split"])
    assert t["alternative"]["ms_per_step"] == pytest.approx(at["roof"]) and at["roof"] > at["split"]
    assert t["interval_ms"][1] >= at["roof"]  # the interval spans both rules
    for doc, r in ((t["kernels_first_step"], split), (t["alternative"]["kernels_first_step"], roof)):
        got = {(k["class"], k["basis"]): k for k in doc}
        assert got[("compute", "shapes")]["target_ms"] == pytest.approx(0.1 * r[0])
        assert got[("memory", "shapes")]["target_ms"] == pytest.approx(0.05 * r[1])
    same = predict(run, "h200", target_gpu="h200")["prediction"]["target"]
    assert same["ms_per_step"] == pytest.approx(0.160)


def test_a_cpu_run_or_an_unknown_source_gpu_is_refused(tmp_path: Path):
    from golfprof.errors import ConfigError

    run, _ = write_run(tmp_path / "run", [("nvjet_gemm", None, 5, 0, 100)], [], device="NVIDIA A100-SXM4-80GB")
    with pytest.raises(ConfigError, match="'NVIDIA A100-SXM4-80GB' is not in the device table"):
        predict(run, "h200", target_gpu="h100")
