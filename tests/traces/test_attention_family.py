"""Attention kernels in their own family: `golfprof diff` and the dashboard's diff say how many ms per step
moved into and out of attention when the backend changes, while the kernel rows name each backend's kernels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from golfprof.profiler import phases as ph
from golfprof.traces.kernels import FAMILIES, family_table, group_name, kernel_family
from tests.cli import invoke
from tests.traces.kineto_synth import AUTOGRAD_TID, TraceBuilder, golfprof_meta

FLASH = ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4, false, false, "
         "cutlass::bfloat16_t, Flash_kernel_traits<64, 128, 128, 4, cutlass::bfloat16_t> >, false, true, false, "
         "false, true, true, false, false>(pytorch_flash::Flash_fwd_params)",
         "void pytorch_flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<Flash_bwd_kernel_traits<64, 128, 128, 8, "
         "4, 4, 4, false, false, cutlass::bfloat16_t, Flash_kernel_traits<64, 128, 128, 8, cutlass::bfloat16_t> >, "
         "false, true, false, false, true, true, false>(pytorch_flash::Flash_bwd_params)")
CUDNN = ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x64_4x1x1_cga1x1x1_kernel0_0",
         "cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_26_64x64x64_1x4x1_cga1x1x1_kernel0_0")
GEMM = "nvjet_sm90_tst_128x256_64x4_2x1_v_bz_TNT"


def _run(root: Path, attention: tuple[str, str], fwd_us: float, bwd_us: float) -> Path:
    """Three steps; per step one GEMM and one attention kernel in forward, the same in backward."""
    b = TraceBuilder(rank=0, world_size=1, golfprof=golfprof_meta(0, 1))
    for n in range(3):
        s = n * 10000.0
        b.step(n, s, 10000)
        b.cpu(ph.STEP, s + 5, 9900)
        b.cpu(ph.FORWARD, s + 10, 3000)
        b.kernel(GEMM, s + 20, s + 30, 400)
        b.kernel(attention[0], s + 40, s + 500, fwd_us)
        b.cpu(ph.BACKWARD, s + 3100, 3000)
        b.kernel(GEMM, s + 3110, s + 3200, 800, tid=AUTOGRAD_TID)
        b.kernel(attention[1], s + 3120, s + 4100, bwd_us, tid=AUTOGRAD_TID)
        b.kernel("triton_poi_fused_add_mul_3", s + 3130, s + 5200, 50, tid=AUTOGRAD_TID)
    b.write(root / "trace" / "rank0.pt.trace.json.gz")
    return root


@pytest.fixture
def flash_vs_cudnn(tmp_path: Path) -> tuple[Path, Path]:
    return _run(tmp_path / "flash", FLASH, 800, 2000), _run(tmp_path / "cudnn", CUDNN, 550, 1300)


def test_diff_moves_the_milliseconds_within_the_attention_family(flash_vs_cudnn):
    r = invoke("diff", *flash_vs_cudnn, "--json")
    assert r.exit_code == 0, r.output
    rank = json.loads(r.stdout)["ranks"][0]
    fam = {f["kernel"]: f for f in rank["kernel_families"]}
    assert list(fam) == ["attention", "matmul", "triton"]
    assert (fam["attention"]["ms_per_step_a"], fam["attention"]["ms_per_step_b"]) == pytest.approx((2.8, 1.85))
    assert fam["attention"]["ms_delta"] == pytest.approx(-0.95) and fam["attention"]["count_delta"] == 0
    assert fam["matmul"]["ms_delta"] == 0 and fam["triton"]["ms_delta"] == 0
    k = rank["kernels"]
    assert sorted(x["kernel"] for x in k["vanished"]) == [
        "attention/flash: pytorch_flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel",
        "attention/flash: pytorch_flash::flash_fwd_kernel"]
    assert all(x["kernel"].startswith("attention/cudnn: cudnn_generated_fort_native_sdpa_sm#_flash_")
               for x in k["appeared"]) and len(k["appeared"]) == 2
    text = invoke("diff", *flash_vs_cudnn).stdout
    assert "kernel families, rank 0" in text and re.search(r"attention\s.*-0\.950", text)


def test_dashboard_diff_draws_the_family_rows(flash_vs_cudnn):
    from golfprof.dashboards.diffs import CHANGED, diff_runs
    from golfprof.profiler.names import DEFAULT_PHASE_REGEX
    from golfprof.traces.ranks import load_ranks

    pattern = re.compile(DEFAULT_PHASE_REGEX)
    a, b = (load_ranks(p, pattern) for p in flash_vs_cudnn)
    d = diff_runs("flash", a, "cudnn", b)
    assert d.families[["kernel", "kind"]].values.tolist() == [["attention", CHANGED]]  # only what moved
    assert d.families["ms_delta"].iloc[0] == pytest.approx(-0.95)


@pytest.mark.parametrize("name,family", [
    (FLASH[0], "attention"), (CUDNN[1], "attention"), ("cudnn::fusion::fmha_reduce_head(float*)", "attention"),
    ("void cutlass::device_kernel<flash::enable_sm90_or_later<flash::FlashAttnBwdSm90<x>>>(y)", "attention"),
    ("triton_tem_fused__to_copy_add_expand_flex_attention_backward_mul_transpose_unsqueeze_view_8", "attention"),
    (GEMM, "matmul"), ("void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_16x16_128x2_tn_align8>(x)",
                       "matmul"), ("cublasLt::splitKreduce_kernel<float>(x)", "matmul"),
    ("triton_tem_fused_mm_4", "matmul"), ("_syrk_kernel", "matmul"), ("_up_act_kernel", "matmul"),
    ("_down_grad_kernel", "matmul"), ("_softcap_ce_kernel", "triton"), ("_momentum_kernel", "triton"),
    ("triton_red_fused__to_copy_mul_sum_2", "triton"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>(int)", "other"),
])
def test_kernel_families(name, family):
    assert kernel_family(name) == family
    assert kernel_family(group_name(name)) == family  # the grouped kernel table keeps the family


def test_family_table_sums_in_family_order():
    import pandas as pd

    t = pd.DataFrame({"kernel": [group_name(GEMM), group_name(FLASH[0]), "misc", group_name(FLASH[1])],
                      "count_per_step": [2.0, 1.0, 1.0, 1.0], "ms_per_step": [1.0, 0.5, 0.25, 1.5]})
    f = family_table(t)
    assert f["kernel"].tolist() == [x for x in FAMILIES if x != "triton"]
    assert f.set_index("kernel")["ms_per_step"].to_dict() == {"attention": 2.0, "matmul": 1.0, "other": 0.25}
