"""The fused LeakyReLU(0.5)² MLP kernels against float64 on the same bf16 operands.

CPU: Triton's interpreter (tests/model/fused_interp.py, one subprocess); CUDA: the real kernels at the full
preset's shapes. Bounds (relative Frobenius error against float64 on the bf16-rounded inputs), with
u = 2⁻⁸ bf16's unit roundoff:
- output ≤ 2u: the activation is rounded to bf16 once in the kernel's epilogue, the product once more.
  Measured in the interpreter: 2.3e-3–2.4e-3.
- each gradient ≤ 3u: the pre-activation, the activation gradient and the product are each rounded once.
  Measured: 2.8e-3–3.4e-3.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from golfprof.model import mlp_triton as MT
from golfprof.model.config import FULL_MODEL, FULL_TRAIN
from tests.model import fused_interp as FI
from tests.model.triton_marks import U_BF16, needs_gpu, needs_triton


@needs_triton
@pytest.mark.parametrize("case", ["mlp_banked", "mlp_unbanked", "mlp_relu2"])
def test_interpreter_forward_and_grads_within_bf16_rounding(case):
    r = FI.results()[case]
    assert r["finite"]
    assert r["out"] <= 2 * U_BF16, r
    assert max(r["grads"].values()) <= 3 * U_BF16, r
    assert all(v == 0.0 for v in r["other_slices_grad_max"]), "a bank slice's grad leaked into its neighbours"


@needs_triton
def test_compiled_fullgraph_keeps_the_custom_ops():
    """torch.compile(fullgraph=True) refuses a graph break; the compiled step equals eager exactly."""
    r = FI.results()["compiled"]
    assert r["loss"] == 0.0 and r["grads"] == 0.0, r


@needs_gpu
def test_cuda_full_preset_shapes_match_float64():
    d, hidden, rows = FULL_MODEL.model_dim, FULL_MODEL.mlp_dim, FULL_TRAIN.micro_batch_seqs * 256
    gen = torch.Generator(device="cuda").manual_seed(0)
    h = torch.randn(rows, d, device="cuda", generator=gen).bfloat16().requires_grad_()
    wu = (torch.randn(hidden, d, device="cuda", generator=gen) / d ** 0.5).bfloat16().requires_grad_()
    wd = (torch.randn(d, hidden, device="cuda", generator=gen) / hidden ** 0.5).bfloat16().requires_grad_()
    probe = torch.randn(rows, d, device="cuda", generator=gen)
    out = torch.compile(MT.mlp, fullgraph=True)(h, wu, wd, 0.5)
    (out.float() * probe).sum().backward()
    fused = [p.grad for p in (h, wu, wd)]
    ref_in = [p.detach().double().requires_grad_() for p in (h, wu, wd)]
    ref = F.linear(F.leaky_relu(F.linear(ref_in[0], ref_in[1]), 0.5).square(), ref_in[2])
    (ref * probe.double()).sum().backward()

    def rel(a, b):
        return float((a.double() - b.double()).norm() / b.double().norm())

    assert rel(out, ref) <= 2 * U_BF16
    assert max(rel(a, b.grad) for a, b in zip(fused, ref_in)) <= 3 * U_BF16


def test_non_bf16_operands_are_refused():
    x = torch.zeros(4, 8)
    with pytest.raises(ValueError, match="bf16 operands"):
        MT.up_act(x, torch.zeros(16, 8), 0.5)
