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

`golfprof::fp8_linear` and `golfprof::fp8_mlp` are `torch.library.custom_op`s with `register_autograd`
(functional: each returns its histories' next state), so `torch.compile(fullgraph=True)` keeps them.
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


def _quantize(t: Tensor, past: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(e4m3 copy, its inverse scale, current amax): scaled by the history's amax, or the current one if empty."""
    amax = t.abs().amax().float()
    ref = torch.where(past.amax() > 0, past.amax(), amax).clamp_min(1e-12)
    scale = E4M3_MAX / ref
    q = (t.float() * scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)
    return q, scale.reciprocal(), amax


def _pushed(hist: Tensor, amax_x: Tensor, amax_w: Tensor) -> Tensor:
    """The history with the newest amaxes in front and the oldest dropped."""
    return torch.cat([torch.stack([amax_x, amax_w])[:, None], hist[:, :-1]], dim=1)


def matmul(x: Tensor, w: Tensor, hist: Tensor) -> tuple[Tensor, Tensor]:
    """(x Wᵀ in e4m3 with bf16 out, the history after this call) for x (M, K), W (N, K), hist (2, HISTORY)."""
    xq, sx, ax = _quantize(x, hist[0])
    wq, sw, aw = _quantize(w, hist[1])
    y = torch._scaled_mm(xq, wq.t(), scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16)
    return y, _pushed(hist, ax, aw)


# Functional ops (autograd formulas need them): each returns its histories' next state, which the
# wrappers below copy into the model's buffers.
@torch.library.custom_op("golfprof::fp8_linear", mutates_args=())
def fp8_linear(x: Tensor, w: Tensor, hist: Tensor) -> tuple[Tensor, Tensor]:
    """(y = x Wᵀ with e4m3 operands under delayed scaling, next history); x (M, K) and W (N, K) in bf16."""
    return matmul(x, w, hist)


@fp8_linear.register_fake
def _(x: Tensor, w: Tensor, hist: Tensor) -> tuple[Tensor, Tensor]:
    return x.new_empty(x.shape[0], w.shape[0], dtype=torch.bfloat16), torch.empty_like(hist)


def _linear_setup(ctx, inputs, output) -> None:
    x, w, _ = inputs
    ctx.save_for_backward(x, w)


def _linear_backward(ctx, g: Tensor, _ghist: Tensor):
    x, w = ctx.saved_tensors
    g = g.to(x.dtype)
    return g @ w, g.t() @ x, None


fp8_linear.register_autograd(_linear_backward, setup_context=_linear_setup)


@torch.library.custom_op("golfprof::fp8_mlp", mutates_args=())
def fp8_mlp(h: Tensor, wup: Tensor, wdown: Tensor, hist: Tensor,
            slope: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(out, pre, post, next history) of out = leaky(h Wupᵀ)² Wdownᵀ, both projections in FP8; hist (2, 2,
    HISTORY): up's, then down's. pre and post are for the fused backward."""
    pre, up = matmul(h, wup, hist[0])
    post = F.leaky_relu(pre, slope).square()
    out, down = matmul(post, wdown, hist[1])
    return out, pre, post, torch.stack([up, down])


@fp8_mlp.register_fake
def _(h: Tensor, wup: Tensor, wdown: Tensor, hist: Tensor, slope: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    M, F_ = h.shape[0], wup.shape[0]
    return h.new_empty(M, wdown.shape[0]), h.new_empty(M, F_), h.new_empty(M, F_), torch.empty_like(hist)


def _mlp_setup(ctx, inputs, output) -> None:
    h, wup, wdown, _, slope = inputs
    ctx.save_for_backward(h, wup, wdown, output[1], output[2])
    ctx.slope = slope


def _mlp_backward(ctx, g: Tensor, _gpre: Tensor, _gpost: Tensor, _ghist: Tensor):
    from .mlp_triton import mlp_fused_backward

    h, wup, wdown, pre, post = ctx.saved_tensors
    dh, dwup, dwdown = mlp_fused_backward(g, h, wup, wdown, pre, post, ctx.slope)
    return dh, dwup, dwdown, None, None


fp8_mlp.register_autograd(_mlp_backward, setup_context=_mlp_setup)


def linear(x: Tensor, w: Tensor, hist: Tensor) -> Tensor:
    """The model's call: x (..., K) of any leading shape; differentiable (bf16 backward)."""
    lead = x.shape[:-1]
    y, nxt = fp8_linear(x.reshape(-1, x.shape[-1]), w, hist)
    with torch.no_grad():
        hist.copy_(nxt)
    return y.view(*lead, w.shape[0])


def mlp_fused_backward(h: Tensor, wup: Tensor, wdown: Tensor, hist: Tensor, slope: float) -> Tensor:
    """FP8 MLP forward, Triton fused backward (`fp8` with `mlp_kernel=triton_fused`); h (..., d), hist (2, 2, H)."""
    lead = h.shape[:-1]
    out, _, _, nxt = fp8_mlp(h.reshape(-1, h.shape[-1]), wup, wdown, hist, slope)
    with torch.no_grad():
        hist.copy_(nxt)
    return out.view(*lead, wdown.shape[0])
