"""The LeakyReLU(slope)² MLP through golfprof's Triton kernels: the `mlp_kernel=triton_fused` toggle.

Forward, `_up_act_kernel`: the up-projection `u = h Wupᵀ` as a tiled matmul (bf16 operands, fp32
accumulation) whose epilogue stores both the pre-activation `u` (backward needs it) and `a = f(u)`,
with f(u) = u² for u > 0 and (slope·u)² otherwise; `a Wdownᵀ` is then cuBLAS. Backward,
`_down_grad_kernel`: `g Wdown` as a tiled matmul whose epilogue multiplies by f'(u) = 2u (u > 0) or
2·slope²·u, so the activation's gradient never round-trips through memory; the weight gradients and
`du Wup` are cuBLAS. So the MLP is one Triton kernel each way plus the matmuls torch does best.

Both run as `torch.library.custom_op`s (`golfprof::mlp_fused`, with `register_autograd`), so
`torch.compile(fullgraph=True)` keeps them as opaque calls instead of breaking the graph. The weights are
any 2-D views (bank slices or a layer's own parameters): both layouts take the same path.

CPU tensors are accepted only under Triton's interpreter (TRITON_INTERPRET=1 set before import), which
the tests use; `available()` says whether training can use the kernels here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .ortho_triton import available, interpreting, tl, triton  # noqa: F401 - available: the toggle's check

if triton is not None:
    from .ortho_triton import _round_bf16

    @triton.jit
    def _store_bf16(ptr, x, mask, INTERP: tl.constexpr):
        """Round to nearest even (the interpreter's own cast truncates) and store."""
        if INTERP:
            tl.store(ptr, _round_bf16(x), mask=mask)
        else:
            tl.store(ptr, x.to(tl.bfloat16), mask=mask)

    @triton.jit
    def _matmul_tile(A, B, M, N, K, sam, sak, sbk, sbn, pid_m, pid_n,
                     INTERP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        """One (BLOCK_M, BLOCK_N) tile of A·B in fp32; rows/cols past the edge clamped, K tails masked."""
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        pa = A + (rm % M)[:, None] * sam + rk[None, :] * sak
        pb = B + rk[:, None] * sbk + (rn % N)[None, :] * sbn
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            left = K - k * BLOCK_K
            a = tl.load(pa, mask=rk[None, :] < left, other=0.0)
            b = tl.load(pb, mask=rk[:, None] < left, other=0.0)
            if INTERP:  # the interpreter multiplies bf16 dot operands' raw bit patterns
                a = a.to(tl.float32)
                b = b.to(tl.float32)
            acc = tl.dot(a, b, acc)
            pa += BLOCK_K * sak
            pb += BLOCK_K * sbk
        return acc, rm, rn

    @triton.jit
    def _up_act_kernel(H, W, PRE, POST, slope, M, N, K, shm, shk, swn, swk, som, son,
                       INTERP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        """PRE = H Wᵀ, POST = leaky(PRE, slope)², both bf16, from one fp32 accumulation."""
        tiles_n = tl.cdiv(N, BLOCK_N)
        pid = tl.program_id(0)
        acc, rm, rn = _matmul_tile(H, W, M, N, K, shm, shk, swk, swn, pid // tiles_n, pid % tiles_n,
                                   INTERP, BLOCK_M, BLOCK_N, BLOCK_K)
        mask = (rm < M)[:, None] & (rn < N)[None, :]
        off = rm[:, None] * som + rn[None, :] * son
        act = tl.where(acc > 0, acc, acc * slope)
        _store_bf16(PRE + off, acc, mask, INTERP)
        _store_bf16(POST + off, act * act, mask, INTERP)

    @triton.jit
    def _down_grad_kernel(G, W, PRE, DPRE, slope2, M, N, K, sgm, sgk, swk, swn, som, son,
                          INTERP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                          BLOCK_K: tl.constexpr):
        """DPRE = (G W) ⊙ f'(PRE), f'(u) = 2u (u > 0) else 2·slope²·u; W is Wdown (K=d rows, N=F cols)."""
        tiles_n = tl.cdiv(N, BLOCK_N)
        pid = tl.program_id(0)
        acc, rm, rn = _matmul_tile(G, W, M, N, K, sgm, sgk, swk, swn, pid // tiles_n, pid % tiles_n,
                                   INTERP, BLOCK_M, BLOCK_N, BLOCK_K)
        mask = (rm < M)[:, None] & (rn < N)[None, :]
        off = rm[:, None] * som + rn[None, :] * son
        u = tl.load(PRE + off, mask=mask, other=0.0).to(tl.float32)
        _store_bf16(DPRE + off, acc * 2.0 * tl.where(u > 0, u, u * slope2), mask, INTERP)


def _blocks(n: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K): tensor-core tiles on GPUs; wide tiles in the interpreter (fewer programs)."""
    if interpreting():
        return 256, 128, 32
    return (128, 128, 64) if n >= 1024 else (64, 128, 64)


def _launch(bm: int, bn: int) -> dict[str, int]:
    """Warps and pipeline stages: 8 warps for a 128×128 tile (4 leave its accumulator spilling), 3 stages."""
    return {"num_warps": 8 if bm * bn >= 128 * 128 else 4, "num_stages": 3}


def _check(h: Tensor, *weights: Tensor) -> None:
    if h.dim() != 2 or any(w.dim() != 2 for w in weights):
        raise ValueError("mlp_triton: 2-D activations and weights expected")
    if h.dtype != torch.bfloat16 or any(w.dtype != torch.bfloat16 for w in weights):
        raise ValueError(f"mlp_triton: bf16 operands expected, got {h.dtype}, {[w.dtype for w in weights]}")


def up_act(h: Tensor, wup: Tensor, slope: float) -> tuple[Tensor, Tensor]:
    """(pre, post) = (h Wupᵀ, leaky(pre)²) for h (M, d), Wup (F, d); one kernel launch."""
    _check(h, wup)
    M, K = h.shape
    N = wup.shape[0]
    pre = torch.empty(M, N, device=h.device, dtype=torch.bfloat16)
    post = torch.empty_like(pre)
    bm, bn, bk = _blocks(N)
    grid = (triton.cdiv(M, bm) * triton.cdiv(N, bn),)
    _up_act_kernel[grid](h, wup, pre, post, slope, M, N, K, h.stride(0), h.stride(1), wup.stride(0), wup.stride(1),
                         pre.stride(0), pre.stride(1), INTERP=interpreting(), BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk,
                         **_launch(bm, bn))
    return pre, post


def down_grad(g: Tensor, wdown: Tensor, pre: Tensor, slope: float) -> Tensor:
    """d loss / d pre = (g Wdown) ⊙ f'(pre) for g (M, d), Wdown (d, F), pre (M, F); one kernel launch."""
    _check(g, wdown, pre)
    M, K = g.shape
    N = wdown.shape[1]
    dpre = torch.empty(M, N, device=g.device, dtype=torch.bfloat16)
    bm, bn, bk = _blocks(N)
    grid = (triton.cdiv(M, bm) * triton.cdiv(N, bn),)
    _down_grad_kernel[grid](g, wdown, pre, dpre, slope * slope, M, N, K, g.stride(0), g.stride(1), wdown.stride(0),
                            wdown.stride(1), dpre.stride(0), dpre.stride(1), INTERP=interpreting(),
                            BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, **_launch(bm, bn))
    return dpre


def mlp_backward(g: Tensor, h: Tensor, wup: Tensor, wdown: Tensor, pre: Tensor, post: Tensor,
                 slope: float) -> tuple[Tensor, Tensor, Tensor]:
    """(dh, dWup, dWdown) of out = leaky(h Wupᵀ)² Wdownᵀ, in bf16; shared with the fp8 path's backward."""
    dpre = down_grad(g.contiguous(), wdown, pre, slope)
    return dpre @ wup, dpre.t() @ h, g.t() @ post


@torch.library.custom_op("golfprof::mlp_fused", mutates_args=())
def mlp_fused(h: Tensor, wup: Tensor, wdown: Tensor, slope: float) -> tuple[Tensor, Tensor, Tensor]:
    """(out, pre, post): out = leaky(h Wupᵀ, slope)² Wdownᵀ for bf16 h (M, d), Wup (F, d), Wdown (d, F);
    pre and post are what backward needs."""
    pre, post = up_act(h, wup, slope)
    return post @ wdown.t(), pre, post


@mlp_fused.register_fake
def _(h: Tensor, wup: Tensor, wdown: Tensor, slope: float) -> tuple[Tensor, Tensor, Tensor]:
    M, F = h.shape[0], wup.shape[0]
    return h.new_empty(M, wdown.shape[0]), h.new_empty(M, F), h.new_empty(M, F)


@torch.library.custom_op("golfprof::mlp_fused_backward", mutates_args=())
def mlp_fused_backward(g: Tensor, h: Tensor, wup: Tensor, wdown: Tensor, pre: Tensor, post: Tensor,
                       slope: float) -> tuple[Tensor, Tensor, Tensor]:
    """(dh, dWup, dWdown): the fused activation-gradient kernel, then three cuBLAS products."""
    return mlp_backward(g, h, wup, wdown, pre, post, slope)


@mlp_fused_backward.register_fake
def _(g: Tensor, h: Tensor, wup: Tensor, wdown: Tensor, pre: Tensor, post: Tensor,
      slope: float) -> tuple[Tensor, Tensor, Tensor]:
    return torch.empty_like(h), torch.empty_like(wup), torch.empty_like(wdown)


def _setup(ctx, inputs, output) -> None:
    h, wup, wdown, slope = inputs
    _, pre, post = output
    ctx.save_for_backward(h, wup, wdown, pre, post)
    ctx.slope = slope


def _backward(ctx, g: Tensor, _gpre: Tensor, _gpost: Tensor):
    h, wup, wdown, pre, post = ctx.saved_tensors
    dh, dwup, dwdown = mlp_fused_backward(g, h, wup, wdown, pre, post, ctx.slope)
    return dh, dwup, dwdown, None


mlp_fused.register_autograd(_backward, setup_context=_setup)


def mlp(h: Tensor, wup: Tensor, wdown: Tensor, slope: float) -> Tensor:
    """The model's call: h (..., d) of any leading shape, bf16 weights; differentiable."""
    lead = h.shape[:-1]
    out, _, _ = mlp_fused(h.reshape(-1, h.shape[-1]), wup, wdown, slope)
    return out.view(*lead, wdown.shape[0])
