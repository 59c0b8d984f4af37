"""FP8 projections with delayed scaling: the bound against bf16 math, the amax history, the bf16 backward.

`torch._scaled_mm` runs on the CPU too, so the op's numerics are tested here; training on the CPU falls back
to bf16 (tests/model/test_kernel_choice.py). Bound: e4m3 keeps 3 mantissa bits, so each operand element
is off by at most u8 = 2⁻⁴ relative (round to nearest); the product's relative Frobenius error against
float64 on the bf16 operands is asserted ≤ u8 (errors of independent elements average out in the sums;
measured 3.9e-2 on Gaussian operands).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from golfprof.model import fp8 as FP8
from golfprof.model.config import FULL_MODEL

U_E4M3 = 2.0 ** -4


def _operands(m: int, k: int, n: int, device: str = "cpu"):
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(m, k, device=device, generator=gen).bfloat16().requires_grad_()
    w = (torch.randn(n, k, device=device, generator=gen) / k ** 0.5).bfloat16().requires_grad_()
    return x, w


def _rel(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def test_forward_within_e4m3_rounding_and_history_fills():
    x, w = _operands(64, 32, 48)
    hist = FP8.new_history(1)[0]
    y = FP8.linear(x, w, hist)
    assert _rel(y, F.linear(x.double(), w.double())) <= U_E4M3
    assert hist[0, 0] == x.abs().max().float() and hist[1, 0] == w.abs().max().float()
    assert (hist[:, 1:] == 0).all()
    FP8.linear(x, w, hist)
    assert (hist[:, :2] == hist[:, :1]).all() and (hist[:, 2:] == 0).all(), "the history shifts by one per call"


def test_scale_is_delayed_so_a_jump_saturates():
    """The second call scales by the first call's amax: values 10x larger clip at e4m3's ±448 / scale."""
    x, w = _operands(16, 32, 16)
    hist = FP8.new_history(1)[0]
    FP8.linear(x.detach(), w.detach(), hist)
    big = x.detach() * 10
    q, inv_scale, amax = FP8._quantize(big, hist[0])
    assert float(q.float().abs().max()) == FP8.E4M3_MAX
    assert float(inv_scale) == pytest.approx(float(x.abs().max()) / FP8.E4M3_MAX, rel=1e-6)
    assert float(amax) == float(big.abs().max())


def test_backward_is_the_bf16_backward():
    x, w = _operands(64, 32, 48)
    g = torch.randn(64, 48).bfloat16()
    FP8.linear(x, w, FP8.new_history(1)[0]).backward(g)
    assert torch.equal(x.grad, g @ w.detach()) and torch.equal(w.grad, g.t() @ x.detach())


def test_op_passes_opcheck():
    """Fake tensors, schema and the autograd formula are consistent (what torch.compile relies on)."""
    x, w = _operands(32, 32, 16)
    hist = FP8.new_history(1)[0]
    xq, sx, _ = FP8._quantize(x, hist[0])
    wq, sw, _ = FP8._quantize(w, hist[1])
    # test_schema left out: its checking mode multiplies the e4m3 inputs, which the CPU does not implement
    torch.library.opcheck(FP8.fp8_mm, (x, w, xq, wq, sx, sw),
                          test_utils=("test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic"))


def test_mlp_forward_within_two_e4m3_roundings():
    """The FP8 MLP (both products in e4m3; its fused backward is tested in Triton's interpreter, with the
    loss curve): twice the one-product bound, since the activation is quantized again before the second."""
    h, wup = _operands(64, 32, 96)
    wdown = (torch.randn(32, 96, generator=torch.Generator().manual_seed(1)) / 96 ** 0.5).bfloat16()
    hist = FP8.new_history(2).view(2, 2, -1)
    with torch.no_grad():
        out = FP8.mlp_fused_backward(h, wup, wdown, hist, 0.5)
    ref = F.linear(F.leaky_relu(F.linear(h.double(), wup.double()), 0.5).square(), wdown.double())
    assert _rel(out, ref) <= 2 * U_E4M3
    assert (hist[:, :, 0] > 0).all() and (hist[:, :, 1:] == 0).all(), "every operand's amax pushed once"


fp8_gpu = pytest.mark.skipif(not (torch.cuda.is_available() and FP8.available(torch.device("cuda"))[0]),
                             reason="needs a CUDA GPU with FP8 matmuls (compute capability 8.9+)")


@fp8_gpu
@pytest.mark.parametrize("n,k", [(FULL_MODEL.mlp_dim, FULL_MODEL.model_dim), (FULL_MODEL.model_dim,
                                                                              FULL_MODEL.mlp_dim),
                                 (FULL_MODEL.vocab_size, FULL_MODEL.model_dim)])
def test_cuda_full_preset_projections_within_bound(n, k):
    x, w = _operands(48 * 256, k, n, "cuda")
    hist = FP8.new_history(1, torch.device("cuda"))[0]
    f = torch.compile(FP8.linear, fullgraph=True)
    f(x, w, hist)
    y = f(x, w, hist)  # the second call runs on the delayed scale
    assert _rel(y, F.linear(x.double(), w.double())) <= U_E4M3
