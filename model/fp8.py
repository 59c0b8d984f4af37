"""Forward projections in FP8 with delayed scaling: the `fp8=mlp|mlp_head` toggle.

Each projection y = x Wᵀ runs as `torch._scaled_mm` on e4m3 copies of x and W. Delayed scaling: the
scale of each operand comes from the largest |value| seen over the last `HISTORY` calls (its amax
history, a small fp32 buffer per projection), not from the current tensor, so the cast does not wait
for a reduction over the tensor it casts; the current amax is pushed into the history afterwards (on
the first call, with an empty history, the current amax is used). Values beyond the history's range
saturate at e4m3's ±448.

Backward stays in bf16 (dx = g W, dW = gᵀ x from the bf16 operands saved in forward), the precision the
speedrun keeps for the down-projection's backward; golfprof keeps every projection's backward there.
With `mlp_kernel=triton_fused`, the MLP's backward is the fused activation-gradient kernel
(`mlp_triton.mlp_backward`).

`golfprof::fp8_mm` (one product) and `golfprof::fp8_mlp` (the MLP, for the fused backward) are
`torch.library.custom_op`s with `register_autograd`, so `torch.compile(fullgraph=True)` keeps them; the
quantization and the history updates around them are plain torch, which the compiler fuses.
`available(device)` says whether this device has FP8 matmuls (CUDA capability 8.9+); elsewhere the
toggle falls back to bf16 with a warning. `torch._scaled_mm` also runs on the CPU, which the tests use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0
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
    """Amax histories for `projections` projections: (projections, 2 operands, HISTORY), empty (zeros)."""
    return torch.zeros(projections, 2, HISTORY, device=device)


@torch.no_grad()
def _quantize(t: Tensor, past: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(e4m3 copy, its inverse scale, current amax): scaled by the history's amax, or the current one if empty."""
    amax = t.abs().amax().float()
    ref = torch.where(past.amax() > 0, past.amax(), amax).clamp_min(1e-12)
    scale = E4M3_MAX / ref
    q = (t.float() * scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)
    return q, scale.reciprocal(), amax


@torch.no_grad()
def _push(hist: Tensor, amax_x: Tensor, amax_w: Tensor) -> None:
    """Newest amaxes in front, the oldest dropped (hist is (2, HISTORY): the activation's row, the weight's)."""
    hist.copy_(torch.cat([torch.stack([amax_x, amax_w])[:, None], hist[:, :-1]], dim=1))


def _mm(xq: Tensor, wq: Tensor, sx: Tensor, sw: Tensor) -> Tensor:
    return torch._scaled_mm(xq, wq.t(), scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16)


# The quantization happens outside the ops, in plain torch that torch.compile fuses; the ops hold what autograd
# must see as one step: the FP8 product forward, the bf16 product backward from the bf16 operands.
@torch.library.custom_op("golfprof::fp8_mm", mutates_args=())
def fp8_mm(x: Tensor, w: Tensor, xq: Tensor, wq: Tensor, sx: Tensor, sw: Tensor) -> Tensor:
    """x Wᵀ computed as (xq·sx)(wq·sw)ᵀ in e4m3, bf16 out; x (M, K) and W (N, K) are the bf16 originals."""
    return _mm(xq, wq, sx, sw)


@fp8_mm.register_fake
def _(x: Tensor, w: Tensor, xq: Tensor, wq: Tensor, sx: Tensor, sw: Tensor) -> Tensor:
    return x.new_empty(x.shape[0], w.shape[0], dtype=torch.bfloat16)


def _mm_setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(inputs[0], inputs[1])


def _mm_backward(ctx, g: Tensor):
    x, w = ctx.saved_tensors
    g = g.to(x.dtype)
    return g @ w, g.t() @ x, None, None, None, None


fp8_mm.register_autograd(_mm_backward, setup_context=_mm_setup)


@torch.library.custom_op("golfprof::fp8_mlp", mutates_args=())
def fp8_mlp(h: Tensor, wup: Tensor, wdown: Tensor, hq: Tensor, wupq: Tensor, wdownq: Tensor, sh: Tensor,
            swup: Tensor, swdown: Tensor, past_post: Tensor, slope: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(out, pre, post, post's amax) of out = leaky(h Wupᵀ)² Wdownᵀ, both products in e4m3 (the activation
    quantized here, from its history `past_post`); pre and post are what the fused backward reads."""
    pre = _mm(hq, wupq, sh, swup)
    post = F.leaky_relu(pre, slope).square()
    postq, spost, apost = _quantize(post, past_post)
    return _mm(postq, wdownq, spost, swdown), pre, post, apost


@fp8_mlp.register_fake
def _(h, wup, wdown, hq, wupq, wdownq, sh, swup, swdown, past_post, slope):
    M, F_ = h.shape[0], wup.shape[0]
    return (h.new_empty(M, wdown.shape[0]), h.new_empty(M, F_), h.new_empty(M, F_),
            past_post.new_empty((), dtype=torch.float32))


def _mlp_setup(ctx, inputs, output) -> None:
    h, wup, wdown = inputs[:3]
    ctx.save_for_backward(h, wup, wdown, output[1], output[2])
    ctx.slope = inputs[-1]


def _mlp_backward(ctx, g: Tensor, _gpre: Tensor, _gpost: Tensor, _gamax: Tensor):
    from .mlp_triton import mlp_fused_backward

    h, wup, wdown, pre, post = ctx.saved_tensors
    dh, dwup, dwdown = mlp_fused_backward(g, h, wup, wdown, pre, post, ctx.slope)
    return (dh, dwup, dwdown) + (None,) * 8


fp8_mlp.register_autograd(_mlp_backward, setup_context=_mlp_setup)


def linear(x: Tensor, w: Tensor, hist: Tensor) -> Tensor:
    """The model's call: x (..., K) of any leading shape times Wᵀ in FP8, pushing both amaxes into hist (2,
    HISTORY); differentiable (bf16 backward)."""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    xq, sx, ax = _quantize(x2, hist[0])
    wq, sw, aw = _quantize(w, hist[1])
    y = fp8_mm(x2, w, xq, wq, sx, sw)
    _push(hist, ax, aw)
    return y.view(*lead, w.shape[0])


def mlp_fused_backward(h: Tensor, wup: Tensor, wdown: Tensor, hist: Tensor, slope: float) -> Tensor:
    """FP8 MLP forward, Triton fused backward (`fp8` with `mlp_kernel=triton_fused`); h (..., d), hist (2, 2,
    HISTORY): the up-projection's, then the down-projection's."""
    lead = h.shape[:-1]
    h2 = h.reshape(-1, h.shape[-1])
    hq, sh, ah = _quantize(h2, hist[0, 0])
    wupq, swup, aup = _quantize(wup, hist[0, 1])
    wdownq, swdown, adown = _quantize(wdown, hist[1, 1])
    out, _, _, apost = fp8_mlp(h2, wup, wdown, hq, wupq, wdownq, sh, swup, swdown, hist[1, 0], slope)
    _push(hist[0], ah, aup)
    _push(hist[1], apost, adown)
    return out.view(*lead, wdown.shape[0])
