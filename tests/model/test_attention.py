"""The attention toggle: choices, fallbacks, fa3's refusal, agreement of every backend, and proof (graph
ops on the CPU, kernel names on a GPU) that the chosen kernel is what runs under torch.compile."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from golfprof.ablations import variants as V
from golfprof.errors import ConfigError, GolfprofWarning
from golfprof.model import attention as A
from golfprof.model.config import FULL_MODEL, TINY_MODEL, TINY_TRAIN, RunConfig, Toggles, choices, replace
from golfprof.model.gpt import GPT
from golfprof.model.train import Trainer
from golfprof.traces.kernels import ATTENTION_KERNELS, attention_backend
from tests.cli import run as golfprof

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
# bf16 tolerance against the fp32 math backend on the same (bf16-rounded) inputs: relative Frobenius
# error. bf16 keeps 8 significant bits (unit roundoff 2^-9 = 0.2%); a kernel that accumulates in
# fp32 and rounds its output once lands near 0.3%; the gradients go through two more bf16 roundings
# (dO, and P or dS), so they get twice the room. A wrong mask or a wrong head mapping errs by ~100%.
BF16_OUT_TOL, BF16_GRAD_TOL = 1e-2, 2e-2


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal GQA attention written out: KV head j serves query heads j*g .. j*g+g-1, float64."""
    q, k, v = q.double(), k.double(), v.double()
    g = q.size(1) // k.size(1)
    k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
    T = q.size(2)
    s = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return s.softmax(-1) @ v


def _inputs(B=2, H=4, Hkv=2, T=64, D=16, device="cpu", dtype=torch.float32, seed=0):
    g = torch.Generator(device=device).manual_seed(seed)
    mk = lambda h: torch.randn(B, h, T, D, device=device, dtype=dtype, generator=g).requires_grad_()  # noqa: E731
    return mk(H), mk(Hkv), mk(Hkv)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


# ---- the toggle -----------------------------------------------------------------------------------------

def test_toggle_choices_default_and_variants():
    assert Toggles().attention == "sdpa"
    assert choices(Toggles, "attention") == A.BACKENDS
    for b in ("flash", "cudnn", "flex"):
        assert V.resolve(f"attn_{b}").attention == b
    with pytest.raises(ConfigError, match="attention 'sideways' is not one of"):
        Toggles(attention="sideways").validate()


def test_check_available_refuses_fa3_without_its_package(monkeypatch):
    monkeypatch.setattr(A, "fa3_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"--attention fa3 needs the flash_attn_interface package \(FlashAttention-3"):
        A.check_available("fa3", "cuda")
    with pytest.raises(ConfigError, match="fa3 needs"):
        Toggles(attention="fa3").validate()  # what build_spec and the trainer run, in the parent
    with pytest.raises(ConfigError, match="valid: sdpa, flash, cudnn, flex, fa3"):
        A.check_available("flash2")
    for b in ("sdpa", "flash", "cudnn", "flex"):
        A.check_available(b, "cpu")  # runnable somewhere, or falls back: not refused


def test_check_available_is_torch_free():
    code = ("import sys; from golfprof.model.attention import check_available; check_available('flash', 'cuda'); "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


@pytest.mark.skipif(A.fa3_installed(), reason="flash_attn_interface is installed here")
def test_cli_refuses_fa3_in_one_line_before_anything_starts(tmp_path):
    r = golfprof("train", "--attention", "fa3", "--preset", "tiny", "--steps", "2", "--device", "cpu",
                 "--runs-dir", tmp_path / "runs", "--data-dir", tmp_path / "data", "--quiet")
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: --attention fa3 needs the flash_attn_interface"), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("name", ["flash", "cudnn", "flex", "fa3"])
def test_gpu_only_choices_fall_back_on_the_cpu_with_a_warning(name, monkeypatch):
    monkeypatch.setattr(A, "fa3_installed", lambda: True)  # fa3 present but no GPU: a fallback, not an error
    with pytest.warns(GolfprofWarning, match=rf"attention={name} unavailable \(the run's device is cpu\); using sdpa"):
        assert A.resolve_backend(name, "cpu") == ("sdpa", "the run's device is cpu")


def test_sdpa_is_kept_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert A.resolve_backend("sdpa", "cpu") == ("sdpa", "")


def test_trainer_records_the_backend_that_ran():
    run = RunConfig("tiny", TINY_MODEL, TINY_TRAIN, Toggles(bf16=(), compile="off", attention="cudnn"))
    with pytest.warns(GolfprofWarning, match="attention=cudnn unavailable"):
        trainer = Trainer(run, torch.device("cpu"))
    assert trainer.attention_used == "sdpa" and trainer.model.attention == "sdpa"


def test_summary_carries_attention_used(tmp_path):
    from golfprof.ablations.run import build_record
    from golfprof.ablations.spec import RunSpec
    from golfprof.profiler.record import RankRecord

    run = RunConfig("tiny", TINY_MODEL, TINY_TRAIN, Toggles(attention="flex"), "attn_flex")
    env = {"device": "cpu", "torch": torch.__version__, "world_size": 1}
    rank = RankRecord(ms_per_step=1.0, optimizer_ms=0.1, forward_backward_ms=0.5, phase_ms={}, final_loss=1.0,
                      peak_memory_mb=1.0, ortho_kernel="torch", attention="flex")
    s = build_record(run, env, [rank], {}, 1, RunSpec(config=run.to_dict()))
    assert s.attention_used == "flex" and s.toggles["attention"] == "flex"


# ---- every backend that runs on the CPU agrees with the written-out reference -----------------------------

@pytest.mark.parametrize("backend", ["sdpa", "math", "flex", "flash"])  # flash: PyTorch's CPU flash kernel
def test_cpu_backends_match_the_reference(backend):
    q, k, v = _inputs()
    with torch.no_grad():
        ref0 = reference(q, k, v)
        assert _rel(A.causal_attention(q.detach(), k.detach(), v.detach(), backend), ref0) < 1e-5
    if backend == "flex":
        return  # flex_attention has no CPU backward (hence its fallback to sdpa in a CPU run)
    y = A.causal_attention(q, k, v, backend)
    ref = reference(q, k, v)
    assert y.shape == q.shape and _rel(y, ref) < 1e-5
    dy = torch.randn_like(y)
    grads = torch.autograd.grad(y, (q, k, v), dy)
    ref_grads = torch.autograd.grad(ref, (q, k, v), dy.double())
    for got, want in zip(grads, ref_grads):
        assert _rel(got, want) < 1e-5


def test_flex_block_mask_is_built_once_per_length_and_device():
    A._MASKS.clear()
    m1 = A.causal_block_mask(64, torch.device("cpu"))
    assert A.causal_block_mask(64, torch.device("cpu")) is m1
    assert A.causal_block_mask(128, torch.device("cpu")) is not m1
    assert set(A._MASKS) == {(64, "cpu"), (128, "cpu")}


def test_model_loss_is_the_same_through_every_cpu_backend():
    ids = torch.randint(0, TINY_MODEL.vocab_size, (2, 64), generator=torch.Generator().manual_seed(0))
    losses = {}
    for b in ("sdpa", "math", "flex", "flash"):
        model = GPT(TINY_MODEL, attention=b)
        if b == "flex":  # forward only on the CPU
            with torch.no_grad():
                losses[b] = (model(ids[:, :-1], ids[:, 1:]).item(), None)
            continue
        loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
        losses[b] = (loss.item(), model.qo_bank.grad.norm().item())
    for b, (loss, g) in losses.items():
        assert math.isclose(loss, losses["math"][0], rel_tol=1e-5), b
        assert g is None or math.isclose(g, losses["math"][1], rel_tol=1e-4), b


# ---- the choice holds under torch.compile: the ops in AOT autograd's graphs ---------------------------------

# the tiny preset cut to 2 layers that still hold each kind (a skip pair, a plain and an XSA layer, a value
# embedding): what is counted is per layer, and tracing 2 layers instead of 5 halves each compile
GRAPH_MODEL = replace(TINY_MODEL, num_layers=2, xsa_last_n=1, ve_layers=(1,))


def _compiled_graph_ops(backend: str, train: bool = True) -> tuple[str, str]:
    """Forward and backward graph code of GRAPH_MODEL compiled fullgraph with `backend` (AOT eager, no inductor);
    with train=False the inference graph and ''."""
    from functorch.compile import make_boxed_func
    from torch._functorch.aot_autograd import aot_module_simplified

    graphs: list[str] = []

    def keep(gm, _inputs):
        graphs.append(gm.code)
        return make_boxed_func(gm.forward)

    def compiler(gm, example_inputs):
        return aot_module_simplified(gm, example_inputs, fw_compiler=keep, bw_compiler=keep)

    torch._dynamo.reset()
    model = GPT(GRAPH_MODEL, attention=backend)
    ids = torch.randint(0, GRAPH_MODEL.vocab_size, (2, 65), generator=torch.Generator().manual_seed(0))
    with torch.set_grad_enabled(train):
        loss = torch.compile(model, backend=compiler, fullgraph=True, dynamic=False)(ids[:, :-1], ids[:, 1:])
    if not train:
        assert len(graphs) == 1, len(graphs)
        return graphs[0], ""
    loss.backward()
    assert len(graphs) == 2, len(graphs)
    return graphs[0], graphs[1]


def test_backend_choice_holds_inside_the_compiled_graph():
    L = GRAPH_MODEL.num_layers
    fwd, bwd = _compiled_graph_ops("flash")
    assert fwd.count("aten._scaled_dot_product_flash_attention_for_cpu.default(") == L
    assert bwd.count("aten._scaled_dot_product_flash_attention_for_cpu_backward.default(") == L
    fwd, bwd = _compiled_graph_ops("math")
    assert "flash_attention" not in fwd + bwd and fwd.count("aten._safe_softmax") + fwd.count("_softmax") >= L
    fwd, _ = _compiled_graph_ops("flex", train=False)
    assert fwd.count("flex_attention") >= L


# ---- trace analysis: attention kernels are named by backend ---------------------------------------------------

@pytest.mark.parametrize("name,backend", [
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 64, 4, false, false, "
     "cutlass::bfloat16_t>, false, true, false, false, true, true, false, false>(pytorch_flash::Flash_fwd_params)",
     "flash"),
    ("void pytorch_flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<Flash_bwd_kernel_traits<64>>(Flash_bwd_params)",
     "flash"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x64_4x1x1_kernel0_0", "cudnn"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_7_64x128x64_4x2x1_kernel0_0", "cudnn"),
    ("cudnn::fusion::fmha_reduce_head(float const*, __nv_bfloat16*, int)", "cudnn"),
    ("cudnn::fusion::compute_dot_do_o_specialized(__nv_bfloat16 const*, __nv_bfloat16 const*, float*)", "cudnn"),
    ("triton_tem_fused__fused_rms_norm__to_copy__unsafe_view_cat_flex_attention_mul_slice_transpose_unsqueeze_view_16",
     "flex"),
    ("triton_tem_fused_flex_attention_0", "flex"),
    ("triton_tem_fused_flex_attention_backward_zeros_1", "flex"),
    ("void cutlass::device_kernel<flash::enable_sm90_or_later<flash::FlashAttnFwdSm90<...>>>(...)", "fa3"),
    ("fmha_cutlassF_bf16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel<...>::Params)", "efficient"),
    ("nvjet_hsh_192x192_64x4_1x2_h_bz_coopA_NTT", None),
    ("triton_poi_fused__to_copy_add_mul_3", None),
])
def test_attention_kernel_names_map_to_their_backend(name, backend):
    assert attention_backend(name) == backend
    assert set(ATTENTION_KERNELS) >= {"flash", "cudnn", "flex", "fa3", "efficient"}


# ---- CUDA: agreement with the math backend, and the kernels a profiled compiled step ran -------------------

GPU_BACKENDS = ["sdpa", "flash", "cudnn", "flex"] + (["fa3"] if A.fa3_installed() else [])


@CUDA
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_cuda_backend_matches_math_within_bf16_tolerance(backend):
    cfg = FULL_MODEL
    q, k, v = _inputs(B=2, H=cfg.num_heads, Hkv=cfg.num_kv_heads, T=2048, D=cfg.head_dim, device="cuda",
                      dtype=torch.bfloat16)
    used, why = A.resolve_backend(backend, "cuda")
    assert used == backend, why
    y = A.causal_attention(q, k, v, backend)
    dy = torch.randn_like(y)
    grads = torch.autograd.grad(y, (q, k, v), dy)
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = A.causal_attention(q32, k32, v32, "math")
    ref_grads = torch.autograd.grad(ref, (q32, k32, v32), dy.float())
    assert y.dtype == torch.bfloat16 and _rel(y, ref) < BF16_OUT_TOL, _rel(y, ref)
    for name, got, want in zip("qkv", grads, ref_grads):
        assert _rel(got, want) < BF16_GRAD_TOL, (name, _rel(got, want))


FORWARD_KERNEL = re.compile(r"flash_fwd|_fprop_|FlashAttnFwd|tem_fused\w*flex_attention(?!_backward)")
BACKWARD_KERNEL = re.compile(r"flash_bwd|_bprop_|FlashAttnBwd|flex_attention_backward")
SMALL = replace(FULL_MODEL, num_layers=2, ve_layers=(1,), xsa_last_n=1)  # the records' heads, 2 layers


def profiled_kernels(backend: str, T: int = 1024, B: int = 4) -> list[str]:
    """Kernel names of one profiled forward+backward of a compiled (fullgraph) small GPT under bf16 autocast."""
    from golfprof.bench.attention import kernel_names

    torch._dynamo.reset()
    A.prepare(backend, T, torch.device("cuda"))
    model = GPT(SMALL, attention=backend).cuda()
    fwd = torch.compile(model, dynamic=False, fullgraph=True)
    ids = torch.randint(0, SMALL.vocab_size, (B, T + 1), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fwd(ids[:, :-1], ids[:, 1:])
        loss.backward()

    for _ in range(2):
        step()
    torch.cuda.synchronize()
    return kernel_names(step)


@CUDA
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_cuda_compiled_step_runs_the_chosen_kernels(backend, tmp_path):
    names = profiled_kernels(backend)
    found = {b: sorted(n for n in names if attention_backend(n) == b) for b in ATTENTION_KERNELS}
    out = Path(os.environ.get("GOLFPROF_TEST_OUT") or tmp_path)  # the device script keeps these
    (out / f"kernels_{backend}.json").write_text(json.dumps({"all": names, "attention": found}, indent=1))
    if backend == "sdpa":  # PyTorch's pick: whichever it is, one backend's kernels, forward and backward
        assert sum(bool(ns) for ns in found.values()) == 1, found
        backend = next(b for b, ns in found.items() if ns)
    assert found[backend], f"no {backend} kernel ran under compile; attention kernels: {found}; all: {names}"
    others = {b: ns for b, ns in found.items() if b != backend and ns}
    assert not others, f"{backend} was chosen but these ran: {others}"
    for what, rx in (("forward", FORWARD_KERNEL), ("backward", BACKWARD_KERNEL)):
        assert any(rx.search(n) for n in found[backend]), f"no {what} kernel of {backend}: {found[backend]}"
