"""FP8 projections with delayed scaling: the bounds against float64 math, the amax histories, the backwards.

`torch._scaled_mm` runs on the CPU too (e5m2 operands included, torch 2.13), so the ops' numerics are tested
here; training on the CPU falls back to bf16 (tests/model/test_kernel_choice.py). Bounds, each product's
relative Frobenius error against float64 on the bf16 operands (errors of independent elements average out in
the sums): forward, e4m3 keeps 3 mantissa bits, so each operand element is off by at most u8 = 2⁻⁴ relative
(round to nearest) and the product is asserted ≤ u8 (measured 3.9e-2 on Gaussian operands). The FP8 input
gradient dx = g W, g in e5m2 (2 mantissa bits: ≤ u5 = 2⁻³ per element, RMS ≤ 2⁻³/√3 ≈ 0.072) and W in e4m3
(RMS ≤ 0.036), is asserted < 0.1 (≈ 0.081 in quadrature; measured 5.9e-2 fc, 5.7e-2 head); it is also pinned
to the product of the dequantized FP8 operands within bf16's output rounding, and kept > 4 u_bf16 from the
bf16 product, so a bf16 dx fails. The bf16 backward is asserted bitwise equal to the reference path's.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from golfprof.model import fp8 as FP8
from golfprof.model.config import FULL_MODEL
from tests.model.triton_marks import needs_triton

U_E4M3 = 2.0 ** -4
U_BF16 = 2.0 ** -8
DX_FP8_BOUND = 0.1
H = FP8.HISTORY
# (name, N, K, dx_fp8) of the model's three projections y = x Wᵀ, W (N, K): what GPT passes for each
PROJECTIONS = [("fc", FULL_MODEL.mlp_dim, FULL_MODEL.model_dim, True),
               ("proj", FULL_MODEL.model_dim, FULL_MODEL.mlp_dim, False),
               ("head", FULL_MODEL.vocab_size, FULL_MODEL.model_dim, True)]
SMALL = {"fc": (96, 32), "proj": (32, 96), "head": (64, 32)}  # the tiny preset's (N, K)


def _operands(m: int, k: int, n: int, device: str = "cpu"):
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(m, k, device=device, generator=gen).bfloat16().requires_grad_()
    w = (torch.randn(n, k, device=device, generator=gen) / k ** 0.5).bfloat16().requires_grad_()
    return x, w


def _rel(a, b) -> float:
    return float((a.detach().double() - b.detach().double()).norm() / b.detach().double().norm())


def _dequant_dx(g: torch.Tensor, w: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
    """dx from the dequantized FP8 operands in float64, with the scales the backward would use given `hist`."""
    gq, sg, _ = FP8._quantize(g, FP8.grad_history(hist), FP8.E5M2)
    wq, sw, _ = FP8._quantize(w, FP8.forward_history(hist)[1])
    return (gq.double() * sg.double()) @ (wq.double() * sw.double())


def test_forward_within_e4m3_rounding_and_history_fills():
    x, w = _operands(64, 32, 48)
    hist = FP8.new_history(1)[0]
    y = FP8.linear(x, w, hist)
    assert _rel(y, F.linear(x.double(), w.double())) <= U_E4M3
    assert hist[0, 0] == x.abs().max().float() and hist[1, 0] == w.abs().max().float()
    assert (hist[:, 1:] == 0).all(), "one forward amax each, and the gradient's history untouched by forward"
    FP8.linear(x, w, hist)
    assert (hist[:, :2] == hist[:, :1]).all() and (hist[:, 2:] == 0).all(), "the history shifts by one per call"


def test_scale_is_delayed_so_a_jump_saturates():
    """The second call scales by the first call's amax: values 10x larger clip at e4m3's ±448 / scale."""
    x, w = _operands(16, 32, 16)
    hist = FP8.new_history(1)[0]
    FP8.linear(x.detach(), w.detach(), hist)
    big = x.detach() * 10
    q, inv_scale, amax = FP8._quantize(big, FP8.forward_history(hist)[0])
    assert float(q.float().abs().max()) == FP8.E4M3_MAX
    assert float(inv_scale) == pytest.approx(float(x.abs().max()) / FP8.E4M3_MAX, rel=1e-6)
    assert float(amax) == float(big.abs().max())


def test_down_projection_backward_is_exactly_the_bf16_path():
    """dx_fp8=False (the down-projection): both gradients bitwise those of F.linear's autograd on the same bf16
    operands, and no gradient history kept."""
    x, w = _operands(64, 96, 32)
    g = torch.randn(64, 32, generator=torch.Generator().manual_seed(2)).bfloat16()
    hist = FP8.new_history(1)[0]
    FP8.linear(x, w, hist, dx_fp8=False).backward(g)
    xr, wr = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    F.linear(xr, wr).backward(g)
    assert torch.equal(x.grad, xr.grad) and torch.equal(w.grad, wr.grad)
    assert torch.equal(x.grad, g @ w.detach()) and torch.equal(w.grad, g.t() @ x.detach())
    assert (FP8.grad_history(hist) == 0).all()


@pytest.mark.parametrize("name", ["fc", "head"])
def test_up_projection_and_head_dx_in_fp8_dw_in_bf16(name):
    """dx_fp8=True: dx = e5m2(g) e4m3(W) (within the FP8 bound of float64, equal to the dequantized operands'
    product up to bf16 output rounding, and not the bf16 product); dW bitwise the bf16 product gᵀx."""
    n, k = SMALL[name]
    x, w = _operands(256, k, n)
    g = torch.randn(256, n, generator=torch.Generator().manual_seed(2)).bfloat16()
    hist = FP8.new_history(1)[0]
    emulated = _dequant_dx(g, w.detach(), FP8.new_history(1)[0])  # the first call: the current amaxes
    FP8.linear(x, w, hist, dx_fp8=True).backward(g)
    exact = g.double() @ w.detach().double()
    assert _rel(x.grad, exact) < DX_FP8_BOUND
    assert _rel(x.grad, emulated) <= U_BF16
    assert _rel(x.grad, g @ w.detach()) > 4 * U_BF16, "dx came out as the bf16 product"
    assert torch.equal(w.grad, g.t() @ x.detach())
    assert _rel(w.grad, g.double().t() @ x.detach().double()) <= U_BF16


def test_gradient_history_updates_in_backward_and_delays_the_scale():
    """Each backward pushes g's amax into the e5m2 history; the next backward scales by it, so a 10x larger
    gradient saturates at e5m2's ±57344 / scale (the emulation with that delayed scale matches dx)."""
    x, w = _operands(64, 32, 96)
    g = torch.randn(64, 96, generator=torch.Generator().manual_seed(2)).bfloat16()
    hist = FP8.new_history(1)[0]
    FP8.linear(x, w, hist, dx_fp8=True).backward(g)
    past = FP8.grad_history(hist)
    assert past[0] == g.abs().max().float() and (past[1:] == 0).all()
    before = hist.clone()
    x.grad = None
    FP8.linear(x, w, hist, dx_fp8=True).backward(10 * g)
    emulated = _dequant_dx(10 * g, w.detach(), before)
    gq, _, _ = FP8._quantize(10 * g, FP8.grad_history(before), FP8.E5M2)
    assert float(gq.float().abs().max()) == FP8.E5M2_MAX, "the delayed scale saturates the jump"
    assert _rel(x.grad, emulated) <= U_BF16
    assert past[0] == (10 * g).abs().max().float() and past[1] == g.abs().max().float() and (past[2:] == 0).all()


@pytest.mark.parametrize("dx_fp8", [False, True])
def test_op_passes_opcheck(dx_fp8):
    """Fake tensors, schema and the autograd formula are consistent (what torch.compile relies on)."""
    x, w = _operands(32, 32, 16)
    hist = FP8.new_history(1)[0]
    xq, sx, _ = FP8._quantize(x, hist[0, :H])
    wq, sw, _ = FP8._quantize(w, hist[1, :H])
    # test_schema left out: its checking mode multiplies the e4m3 inputs, which the CPU does not implement
    torch.library.opcheck(FP8.fp8_mm, (x, w, xq, wq, sx, sw, FP8.grad_history(hist), dx_fp8),
                          test_utils=("test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic"))


def test_mlp_forward_within_two_e4m3_roundings():
    """The FP8 MLP (both products in e4m3; its fused backward is tested in Triton's interpreter below and with
    the loss curve): twice the one-product bound, since the activation is quantized again before the second."""
    h, wup = _operands(64, 32, 96)
    wdown = (torch.randn(32, 96, generator=torch.Generator().manual_seed(1)) / 96 ** 0.5).bfloat16()
    hist = FP8.new_history(2).view(2, 2, -1)
    with torch.no_grad():
        out = FP8.mlp_fused_backward(h, wup, wdown, hist, 0.5)
    ref = F.linear(F.leaky_relu(F.linear(h.double(), wup.double()), 0.5).square(), wdown.double())
    assert _rel(out, ref) <= 2 * U_E4M3
    assert (hist[:, :, 0] > 0).all() and (hist[:, :, 1:] == 0).all(), "every operand's forward amax pushed once"


class _Tiny(torch.nn.Module):
    """The model's three FP8 calls in the order GPT makes them: up-projection, down-projection, head."""

    def __init__(self, d: int = 32, hidden: int = 96, vocab: int = 64) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.wup = torch.nn.Parameter((torch.randn(hidden, d, generator=gen) / d ** 0.5).bfloat16())
        self.wdown = torch.nn.Parameter((torch.randn(d, hidden, generator=gen) / hidden ** 0.5).bfloat16())
        self.head = torch.nn.Parameter((torch.randn(vocab, d, generator=gen) / d ** 0.5).bfloat16())
        self.register_buffer("hist", FP8.new_history(3), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = F.leaky_relu(FP8.linear(x, self.wup, self.hist[0], dx_fp8=True), 0.5).square()
        x = x + FP8.linear(u, self.wdown, self.hist[1])
        return FP8.linear(x, self.head, self.hist[2], dx_fp8=True).float().logsumexp(-1).mean()


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_fullgraph_matches_eager(backend):
    """torch.compile(fullgraph=True) keeps the ops and applies the backward's history pushes to the module's buffer.
    aot_eager (the traced graphs, run by eager kernels) is bitwise eager. Inductor's fused arithmetic may move
    a gradient element by one bf16 ulp, and 1 in 32 such moves crosses an e5m2 rounding point (32 bf16 values
    per e5m2 step), moving that element by one e5m2 step (≤ 2⁻² relative): were every element moved, the
    gradients would differ by ≈ √(1/32)·2⁻² ≈ 0.044, so they are asserted within 2⁻⁴ (measured 1.4e-2 on dx,
    ≤ 5e-5 on the dW) and the amax histories within 2⁻⁶."""
    x = torch.randn(4, 32, 32, generator=torch.Generator().manual_seed(3)).bfloat16().requires_grad_()
    runs = {}
    for name in ("eager", backend):
        m = _Tiny()
        f = m if name == "eager" else torch.compile(m, fullgraph=True, backend=backend)
        for _ in range(2):  # the second step runs on the delayed scales
            x.grad = None
            m.zero_grad()
            f(x).backward()
        runs[name] = (x.grad.clone(), [p.grad.clone() for p in m.parameters()], m.hist.clone())
    (dx_e, dw_e, hist_e), (dx_c, dw_c, hist_c) = runs["eager"], runs[backend]
    assert (FP8.grad_history(hist_e)[[0, 2], :2] > 0).all() and (FP8.grad_history(hist_e)[1] == 0).all()
    assert (FP8.grad_history(hist_e)[:, 2:] == 0).all()
    if backend == "aot_eager":
        assert torch.equal(dx_c, dx_e) and all(map(torch.equal, dw_c, dw_e)) and torch.equal(hist_c, hist_e)
    else:
        assert _rel(dx_c, dx_e) <= 2.0 ** -4 and all(_rel(a, b) <= 2.0 ** -4 for a, b in zip(dw_c, dw_e))
        assert torch.allclose(hist_c, hist_e, rtol=2.0 ** -6)


_FUSED_SCRIPT = textwrap.dedent(r"""
    import json, os
    assert os.environ["TRITON_INTERPRET"] == "1"
    import torch, torch.nn.functional as F
    from golfprof.model import fp8 as FP8

    rel = lambda a, b: float((a.double() - b.double()).norm() / b.double().norm())
    gen = torch.Generator().manual_seed(0)
    M, d, Fd, slope = 128, 32, 96, 0.5
    h = torch.randn(M, d, generator=gen).bfloat16().requires_grad_()
    wu = (torch.randn(Fd, d, generator=gen) / d ** 0.5).bfloat16().requires_grad_()
    wd = (torch.randn(d, Fd, generator=gen) / Fd ** 0.5).bfloat16().requires_grad_()
    g = torch.randn(M, d, generator=gen).bfloat16()
    hist = FP8.new_history(2).view(2, 2, -1)
    FP8.mlp_fused_backward(h, wu, wd, hist, slope).backward(g)
    # what the backward received: pre and post of the same FP8 forward, then its bf16 dpre
    empty = FP8.new_history(2).view(2, 2, -1)
    up, down = FP8.forward_history(empty[0]), FP8.forward_history(empty[1])
    hq, sh, _ = FP8._quantize(h.detach(), up[0])
    wuq, swu, _ = FP8._quantize(wu.detach(), up[1])
    wdq, swd, _ = FP8._quantize(wd.detach(), down[1])
    _, pre, post, _ = FP8.fp8_mlp(h.detach(), wu.detach(), wd.detach(), hq, wuq, wdq, sh, swu, swd, down[0],
                                  FP8.grad_history(empty[0]), slope)
    dpre, _, _ = FP8.fp8_mlp_grads(g, h.detach(), wd.detach(), pre, post, slope)
    dq, sd, _ = FP8._quantize(dpre, FP8.grad_history(empty[0]), FP8.E5M2)
    emulated = (dq.double() * sd.double()) @ (wuq.double() * swu.double())
    h64, wu64, wd64 = (t.detach().double().requires_grad_() for t in (h, wu, wd))
    F.linear(F.leaky_relu(F.linear(h64, wu64), slope).square(), wd64).backward(g.double())
    print("RESULT" + json.dumps({
        "dh_exact": rel(h.grad, h64.grad), "dh_emulated": rel(h.grad, emulated),
        "dh_bf16": rel(h.grad, dpre @ wu.detach()),
        "dwup_equal": torch.equal(wu.grad, dpre.t() @ h.detach()), "dwdown_equal": torch.equal(wd.grad, g.t() @ post),
        "grad_hist": FP8.grad_history(hist).tolist(), "dpre_amax": float(dpre.abs().max())}))
""")


@needs_triton
def test_fused_mlp_backward_up_dx_in_fp8_down_in_bf16():
    """mlp_kernel=triton_fused with fp8 (Triton's interpreter): the up-projection's dx from e5m2(dpre), its
    history pushed; the down-projection's gradient (the fused kernel's dpre) and both dW bitwise bf16."""
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", _FUSED_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))[len("RESULT"):])
    assert r["dh_exact"] < DX_FP8_BOUND and r["dh_emulated"] <= U_BF16 and r["dh_bf16"] > 4 * U_BF16, r
    assert r["dwup_equal"] and r["dwdown_equal"], r
    up, down = r["grad_hist"]
    assert up[0] == r["dpre_amax"] and not any(up[1:]) and not any(down), r


fp8_gpu = pytest.mark.skipif(not (torch.cuda.is_available() and FP8.available(torch.device("cuda"))[0]),
                             reason="needs a CUDA GPU with FP8 matmuls (compute capability 8.9+)")
FULL_ROWS = 48 * 2048  # the full preset's micro-batch: 48 sequences of 2048 tokens


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


@fp8_gpu
@pytest.mark.parametrize("name,n,k,dx_fp8", PROJECTIONS, ids=[p[0] for p in PROJECTIONS])
def test_cuda_full_preset_backward_within_bound(name, n, k, dx_fp8):
    """The backward at the full preset's shapes (98304 rows), compiled fullgraph, second step on the delayed
    scales: fc's and the head's dx within the FP8 bound and off the bf16 product, proj's dx and every dW within
    bf16 rounding of float64 (cuBLAS accumulates in fp32; 2 u_bf16), g's history pushed only where dx is FP8.
    Measured on an H200: fc's and the head's dx 5.9e-2, proj's 1.7e-3 (bitwise its eager bf16 product), dW 1.7e-3."""
    x, w = _operands(FULL_ROWS, k, n, "cuda")
    g = torch.randn(FULL_ROWS, n, device="cuda", generator=torch.Generator("cuda").manual_seed(2)).bfloat16()
    hist = FP8.new_history(1, torch.device("cuda"))[0]
    f = torch.compile(lambda x, w, hist: FP8.linear(x, w, hist, dx_fp8=dx_fp8), fullgraph=True)
    for _ in range(2):
        x.grad = w.grad = None
        f(x, w, hist).backward(g)
    exact_dx, exact_dw = g.double() @ w.detach().double(), g.double().t() @ x.detach().double()
    if dx_fp8:
        assert _rel(x.grad, exact_dx) < DX_FP8_BOUND and _rel(x.grad, g @ w.detach()) > 4 * U_BF16
        assert (FP8.grad_history(hist)[:2] == g.abs().max().float()).all()
    else:
        assert _rel(x.grad, exact_dx) <= 2 * U_BF16 and (FP8.grad_history(hist) == 0).all()
    assert _rel(w.grad, exact_dw) <= 2 * U_BF16


@fp8_gpu
def test_cuda_full_preset_fused_mlp_backward_within_bound():
    """mlp_kernel=triton_fused with fp8 at the full preset's shapes, compiled fullgraph: dh (FP8 dx of the
    up-projection) within the FP8 bound, the weight gradients within the FP8 forward's error (pre and post are
    FP8 products: 2 u8), the up-projection's gradient history pushed, the down-projection's empty. Measured on
    an H200: dh 7.0e-2 (e5m2 on top of the FP8 forward's error in dpre), dWup 3.7e-2, dWdown 4.4e-2."""
    d, hidden = FULL_MODEL.model_dim, FULL_MODEL.mlp_dim
    h, wup = _operands(FULL_ROWS, d, hidden, "cuda")
    gen = torch.Generator("cuda").manual_seed(1)
    wdown = (torch.randn(d, hidden, device="cuda", generator=gen) / hidden ** 0.5).bfloat16().requires_grad_()
    g = torch.randn(FULL_ROWS, d, device="cuda", generator=gen).bfloat16()
    hist = FP8.new_history(2, torch.device("cuda")).view(2, 2, -1)
    f = torch.compile(FP8.mlp_fused_backward, fullgraph=True)
    for _ in range(2):
        h.grad = wup.grad = wdown.grad = None
        f(h, wup, wdown, hist, 0.5).backward(g)
    h64, wu64, wd64 = (t.detach().double().requires_grad_() for t in (h, wup, wdown))
    F.linear(F.leaky_relu(F.linear(h64, wu64), 0.5).square(), wd64).backward(g.double())
    assert _rel(h.grad, h64.grad) < DX_FP8_BOUND
    assert _rel(wup.grad, wu64.grad) <= 2 * U_E4M3 and _rel(wdown.grad, wd64.grad) <= 2 * U_E4M3
    assert (FP8.grad_history(hist[0])[:2] > 0).all() and (FP8.grad_history(hist[1]) == 0).all()


def _square_in_fp32(monkeypatch) -> None:
    """What CUDA autocast does to `square` (it runs as pow, on autocast's fp32 list; CPU autocast leaves it bf16):
    the activation the down-projection gets is fp32. The eager tiny preset on an H200 failed on it."""
    square = torch.Tensor.square
    monkeypatch.setattr(torch.Tensor, "square", lambda t: square(t).float())


def test_an_fp32_activation_is_taken_as_bf16_forward_and_backward(monkeypatch):
    """FP8.linear of an fp32 x (the down-projection's input under CUDA autocast) equals that of x in bf16, and its
    backward runs: dx in fp32 (x's dtype), dW as from the bf16 x; the fused op's post stays bf16 (its fake's)."""
    _square_in_fp32(monkeypatch)
    x, w = _operands(64, 96, 32)
    x32 = x.detach().float().requires_grad_()
    g = torch.randn(64, 32, generator=torch.Generator().manual_seed(1)).bfloat16()
    outs = []
    for xi in (x, x32):
        wi = w.detach().clone().requires_grad_()
        y = FP8.linear(xi, wi, FP8.new_history(1)[0])
        y.backward(g)
        outs.append((y, xi.grad, wi.grad))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][2], outs[1][2])
    assert outs[1][1].dtype == torch.float32 and torch.equal(outs[1][1], outs[0][1].float())
    h, wup = (t.detach() for t in _operands(64, 32, 96))
    wdown = _operands(1, 96, 32)[1].detach()
    empty = FP8.new_history(2)
    hq, sh, _ = FP8._quantize(h, empty[0, 0, :H])
    uq, su, _ = FP8._quantize(wup, empty[0, 1, :H])
    dq, sd, _ = FP8._quantize(wdown, empty[1, 1, :H])
    _, pre, post, _ = FP8.fp8_mlp(h, wup, wdown, hq, uq, dq, sh, su, sd, empty[1, 0, :H], empty[0, 0, H:], 0.5)
    assert pre.dtype == post.dtype == torch.bfloat16


@pytest.mark.parametrize("autocast_square", ["bf16", "fp32"])
def test_the_trainer_runs_the_up_projection_and_head_backward_in_fp8_and_the_down_projection_in_bf16(
        tmp_path, monkeypatch, autocast_square):
    """The tiny preset, eager, fp8=mlp_head forced on the CPU (torch._scaled_mm runs there): after a few steps the
    head's and the up-projections' gradient histories hold amaxes (their dx went through FP8), the
    down-projections' stay empty (their backward is the bf16 path); with `square` in fp32 as well, as CUDA's
    autocast runs it."""
    if autocast_square == "fp32":
        _square_in_fp32(monkeypatch)
    from golfprof.model import train as TR
    from golfprof.model.config import TINY_MODEL, TINY_TRAIN, RunConfig, Toggles, replace
    from golfprof.model.data import DistributedLoader
    from golfprof.model.kernel_choice import Kernels
    from golfprof.model.synthetic import write_synthetic_dataset

    steps = 4
    train = replace(TINY_TRAIN, steps=steps)
    paths = write_synthetic_dataset(str(tmp_path), TINY_MODEL.vocab_size, steps * train.tokens_per_step + 1,
                                    train.val_tokens, seed=0)
    saved = TR.resolve_kernels
    TR.resolve_kernels = lambda toggles, device: Kernels("inductor", "inductor", "mlp_head")
    try:
        trainer = TR.Trainer(RunConfig("tiny", TINY_MODEL, train, Toggles(compile="off"), "fp8"), torch.device("cpu"))
        loader = DistributedLoader(paths["train"], train.seq_len, train.micro_batch_seqs, trainer.grad_accum)
        losses = [float(trainer.step(s, loader)) for s in range(steps)]
    finally:
        TR.resolve_kernels = saved
    model = next(m for m in trainer.model.modules() if hasattr(m, "fp8_mlp_hist"))
    g = slice(FP8.HISTORY, None)  # the backward's columns, row 0: the output gradient's amaxes
    assert all(math.isfinite(x) for x in losses)
    assert (model.fp8_head_hist[0, g] > 0).any()
    assert (model.fp8_mlp_hist[:, 0, 0, g] > 0).any()  # up-projections (their g is zero while proj is zero-init)
    assert (model.fp8_mlp_hist[:, 1, 0, g] == 0).all()  # down-projections: bf16 backward, nothing pushed
