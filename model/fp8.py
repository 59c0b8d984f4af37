"""Projections in FP8 with delayed scaling: the `fp8=mlp|mlp_head` toggle.

Forward: each projection y = x Wᵀ runs as `torch._scaled_mm` on e4m3 copies of x and W. Delayed scaling:
the scale of each operand comes from the largest |value| seen over the last `HISTORY` calls (its amax
history, a small fp32 buffer per projection), not from the current tensor, so the cast does not wait for a
reduction over the tensor it casts; the current amax is pushed into the history afterwards (on the first
call, with an empty history, the current amax is used). Values beyond the history's range saturate at the
format's largest finite value (e4m3 ±448, e5m2 ±57344).

Backward, as the speedrun keeps it (issue 27's reading of the FP8 records; the head's dx is what
modded-nanogpt's `nanogpt::mm_backward` computes, there with fixed scales):
- the up-projection (MLP fc) and the LM head (`dx_fp8=True`): the input gradient dx = g W in FP8 too, g cast
  to e5m2 (5 exponent bits: gradients span a wider range than activations) with its own delayed-scaling
  history, W as the e4m3 copy made in forward, through `torch._scaled_mm` (bf16 out);
- the down-projection (MLP proj, `dx_fp8=False`): its whole backward in bf16 (dx = g W from the bf16 W);
- every weight gradient dW = gᵀ x stays a bf16 product of the bf16 operands: dW is summed over the
  micro-batches and then orthogonalized by Muon, so its rounding reaches the update directly, where dx's is
  one more rounding among the activations'. (The speedrun's FP8 head op computes dW from the FP8 copies with
  an fp32 output; golfprof keeps dW's inputs in bf16, one difference from it.)
`linear` defaults to `dx_fp8=False` (its backward before this option existed); model/gpt.py passes
`dx_fp8=True` for the up-projection and the head. With `mlp_kernel=triton_fused`, the MLP's backward is the fused
activation-gradient kernel (`mlp_triton.down_grad`, bf16: the down-projection's dx), then the up-projection's
dx in FP8 from that kernel's dpre, and the two dW in bf16.

A history is (2, 2 HISTORY): columns [:HISTORY] the forward's (row 0 the activation x, row 1 the weight W),
columns [HISTORY:] the backward's (row 0 the output gradient g; row 1 stays empty, as backward reuses W's
forward copy). The gradient's history is pushed in backward, a mutation of a forward input that autograd
and AOTAutograd apply in place (the eager and compiled backwards update the same buffer).

`golfprof::fp8_mm` (one product), `golfprof::fp8_mlp` (the MLP, for the fused backward) and
`golfprof::fp8_mlp_grads` (that backward's Triton part) are `torch.library.custom_op`s with `register_autograd`,
so `torch.compile(fullgraph=True)` keeps them; the quantization, the FP8 dx product and the history updates
around them are plain torch, which the compiler fuses. `available(device)` says whether this device has FP8
matmuls (CUDA capability 8.9+); elsewhere the toggle falls back to bf16 with a warning. `torch._scaled_mm`
also runs on the CPU, e5m2 operands included (torch 2.13), which the tests use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0
E5M2 = torch.float8_e5m2
E5M2_MAX = 57344.0
HISTORY = 16


def available(device: torch.device) -> tuple[bool, str]:
    """(True, what runs) when `torch._scaled_mm` has FP8 tensor cores on `device`, else (False, why)."""
    if device.type != "cuda":
        return False, f"FP8 matmuls need a CUDA GPU of compute capability 8.9+, and this run is on {device.type}"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 9):
        return False, f"FP8 matmuls need compute capability 8.9+, found {major}.{minor}"
    return True, f"torch._scaled_mm on {torch.cuda.get_device_name(device)} (sm_{major}{minor})"


def new_history(projections: int, device: torch.device | None = None) -> Tensor:
    """Amax histories for `projections` projections: (projections, 2 rows, 2 HISTORY), empty (zeros); the
    layout is in the module docstring (forward columns, then the gradient's)."""
    return torch.zeros(projections, 2, 2 * HISTORY, device=device)


def forward_history(hist: Tensor) -> Tensor:
    """The forward's (2, HISTORY) part of one projection's history: row 0 the activation's, row 1 the weight's."""
    return hist[..., :HISTORY]


def grad_history(hist: Tensor) -> Tensor:
    """The backward's (HISTORY,) part of one projection's history: the output gradient's (e5m2) amaxes."""
    return hist[..., 0, HISTORY:]


@torch.no_grad()
def _quantize(t: Tensor, past: Tensor, dtype: torch.dtype = E4M3) -> tuple[Tensor, Tensor, Tensor]:
    """(FP8 copy, its inverse scale, current amax): scaled by the history's amax, or the current one if empty."""
    top = E4M3_MAX if dtype == E4M3 else E5M2_MAX
    amax = t.abs().amax().float()
    ref = torch.where(past.amax() > 0, past.amax(), amax).clamp_min(1e-12)
    scale = top / ref
    q = (t.float() * scale).clamp(-top, top).to(dtype)
    return q, scale.reciprocal(), amax


@torch.no_grad()
def _push(rows: Tensor, *amaxes: Tensor) -> None:
    """Newest amaxes in front, the oldest dropped: rows (len(amaxes), HISTORY), or (HISTORY,) for one amax."""
    r = rows.view(len(amaxes), -1)
    r.copy_(torch.cat([torch.stack(amaxes)[:, None], r[:, :-1]], dim=1))


def _mm(xq: Tensor, wq: Tensor, sx: Tensor, sw: Tensor) -> Tensor:
    return torch._scaled_mm(xq, wq.t(), scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16)


def _dx_fp8(g: Tensor, wq: Tensor, sw: Tensor, past_g: Tensor) -> Tensor:
    """dx = g W with g in e5m2 (delayed scale from `past_g`, then its amax pushed there) and W the forward's
    e4m3 copy; `_scaled_mm` wants its first operand row-major and its second column-major, hence the transposed
    copy of the (N, K) weight (one byte an element); e5m2 x e4m3 is an allowed pair (e5m2 x e5m2 is not)."""
    gq, sg, ag = _quantize(g.contiguous(), past_g, E5M2)
    dx = torch._scaled_mm(gq.contiguous(), wq.t().contiguous().t(), scale_a=sg, scale_b=sw, out_dtype=torch.bfloat16)
    _push(past_g, ag)
    return dx


# The quantization happens outside the ops, in plain torch that torch.compile fuses; the ops hold what autograd
# must see as one step: the FP8 product forward, and its backward (the FP8 or bf16 dx, the bf16 dW).
@torch.library.custom_op("golfprof::fp8_mm", mutates_args=())
def fp8_mm(x: Tensor, w: Tensor, xq: Tensor, wq: Tensor, sx: Tensor, sw: Tensor, past_g: Tensor,
           dx_fp8: bool) -> Tensor:
    """x Wᵀ computed as (xq·sx)(wq·sw)ᵀ in e4m3, bf16 out; x (M, K) and W (N, K) are the bf16 originals; past_g
    is the output gradient's history, which backward reads and pushes when dx_fp8 (forward leaves it)."""
    return _mm(xq, wq, sx, sw)


@fp8_mm.register_fake
def _(x: Tensor, w: Tensor, xq: Tensor, wq: Tensor, sx: Tensor, sw: Tensor, past_g: Tensor,
      dx_fp8: bool) -> Tensor:
    return x.new_empty(x.shape[0], w.shape[0], dtype=torch.bfloat16)


def _mm_setup(ctx, inputs, output) -> None:
    x, w, _, wq, _, sw, past_g, dx_fp8 = inputs
    ctx.dx_fp8 = dx_fp8
    # past_g is held, not saved: the forward's own history push writes the same buffer after this op, which
    # would trip save_for_backward's version check, and backward must write it anyway
    ctx.past_g = past_g
    if dx_fp8:
        ctx.save_for_backward(x, wq, sw)
    else:
        ctx.save_for_backward(x, w)


def _mm_backward(ctx, g: Tensor):
    if ctx.dx_fp8:
        x, wq, sw = ctx.saved_tensors
        g = g.to(x.dtype)
        dx = _dx_fp8(g, wq, sw, ctx.past_g)
    else:
        x, w = ctx.saved_tensors
        g = g.to(x.dtype)
        dx = g @ w
    return dx, g.t() @ x, None, None, None, None, None, None


fp8_mm.register_autograd(_mm_backward, setup_context=_mm_setup)


@torch.library.custom_op("golfprof::fp8_mlp", mutates_args=())
def fp8_mlp(h: Tensor, wup: Tensor, wdown: Tensor, hq: Tensor, wupq: Tensor, wdownq: Tensor, sh: Tensor,
            swup: Tensor, swdown: Tensor, past_post: Tensor, past_dpre: Tensor,
            slope: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(out, pre, post, post's amax) of out = leaky(h Wupᵀ)² Wdownᵀ, both products in e4m3 (the activation
    quantized here, from its history `past_post`); pre and post are what the fused backward reads, past_dpre
    the up-projection's gradient history, which backward reads and pushes (forward leaves it)."""
    pre = _mm(hq, wupq, sh, swup)
    post = F.leaky_relu(pre, slope).square().to(pre.dtype)  # CUDA autocast runs square (pow) in fp32
    postq, spost, apost = _quantize(post, past_post)
    return _mm(postq, wdownq, spost, swdown), pre, post, apost


@fp8_mlp.register_fake
def _(h, wup, wdown, hq, wupq, wdownq, sh, swup, swdown, past_post, past_dpre, slope):
    M, F_ = h.shape[0], wup.shape[0]
    return (h.new_empty(M, wdown.shape[0]), h.new_empty(M, F_), h.new_empty(M, F_),
            past_post.new_empty((), dtype=torch.float32))


def _mlp_setup(ctx, inputs, output) -> None:
    h, _, wdown, _, wupq, _, _, swup = inputs[:8]
    ctx.save_for_backward(h, wdown, wupq, swup, output[1], output[2])
    ctx.past_dpre, ctx.slope = inputs[-2], inputs[-1]  # held, not saved: see _mm_setup


def _mlp_backward(ctx, g: Tensor, _gpre: Tensor, _gpost: Tensor, _gamax: Tensor):
    h, wdown, wupq, swup, pre, post = ctx.saved_tensors
    dpre, dwup, dwdown = fp8_mlp_grads(g, h, wdown, pre, post, ctx.slope)
    dh = _dx_fp8(dpre, wupq, swup, ctx.past_dpre)
    return (dh, dwup, dwdown) + (None,) * 9


fp8_mlp.register_autograd(_mlp_backward, setup_context=_mlp_setup)


@torch.library.custom_op("golfprof::fp8_mlp_grads", mutates_args=())
def fp8_mlp_grads(g: Tensor, h: Tensor, wdown: Tensor, pre: Tensor, post: Tensor,
                  slope: float) -> tuple[Tensor, Tensor, Tensor]:
    """(dpre, dWup, dWdown) in bf16: the fused activation-gradient kernel (the down-projection's dx times the
    activation's derivative), then the two weight gradients; the up-projection's dx is the caller's (FP8)."""
    from .mlp_triton import down_grad

    dpre = down_grad(g.contiguous(), wdown, pre, slope)
    return dpre, dpre.t() @ h, g.t() @ post


@fp8_mlp_grads.register_fake
def _(g: Tensor, h: Tensor, wdown: Tensor, pre: Tensor, post: Tensor,
      slope: float) -> tuple[Tensor, Tensor, Tensor]:
    return torch.empty_like(pre), pre.new_empty(pre.shape[1], h.shape[1]), torch.empty_like(wdown)


def linear(x: Tensor, w: Tensor, hist: Tensor, dx_fp8: bool = False) -> Tensor:
    """The model's call: x (..., K) of any leading shape times Wᵀ in FP8, pushing both amaxes into hist (2,
    2 HISTORY); differentiable: dx in FP8 (e5m2 g) when dx_fp8 (the up-projection, the head), else bf16."""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]).to(w.dtype)  # an fp32 x (CUDA autocast's square is pow, fp32) as W's bf16
    fwd = forward_history(hist)
    xq, sx, ax = _quantize(x2, fwd[0])
    wq, sw, aw = _quantize(w, fwd[1])
    y = fp8_mm(x2, w, xq, wq, sx, sw, grad_history(hist), dx_fp8)
    _push(fwd, ax, aw)
    return y.view(*lead, w.shape[0])


def mlp_fused_backward(h: Tensor, wup: Tensor, wdown: Tensor, hist: Tensor, slope: float) -> Tensor:
    """FP8 MLP forward, Triton fused backward with the up-projection's dx in FP8 (`fp8` with
    `mlp_kernel=triton_fused`); h (..., d), hist (2, 2, 2 HISTORY): the up-projection's, then the down's."""
    lead = h.shape[:-1]
    h2 = h.reshape(-1, h.shape[-1])
    up, down = forward_history(hist[0]), forward_history(hist[1])
    hq, sh, ah = _quantize(h2, up[0])
    wupq, swup, aup = _quantize(wup, up[1])
    wdownq, swdown, adown = _quantize(wdown, down[1])
    out, _, _, apost = fp8_mlp(h2, wup, wdown, hq, wupq, wdownq, sh, swup, swdown, down[0], grad_history(hist[0]),
                               slope)
    _push(up, ah, aup)
    _push(down, apost, adown)
    return out.view(*lead, wdown.shape[0])
