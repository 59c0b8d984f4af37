"""Softcapped cross-entropy, forward and backward in one Triton pass: the `ce_kernel=triton_fused` toggle.

The reference (`GPT.forward`) materialises fp32 logits z, then y = c·tanh(z/c), then
`F.cross_entropy(y)`; autograd keeps y and its softmax for backward and reads the logits again. Here
one kernel reads each row of z once per pass: pass 1 an online max / sum-of-exponentials of y, pass 2
writes the row's loss and, since the loss is a mean over rows, its gradient already:

    dz = (softmax(y) − onehot(target)) · (1 − (y/c)²) / rows

so backward is one multiply by the incoming scalar. That is why it is training only: an eval forward
would write a gradient nobody reads (the model takes the reference path when not training).

`golfprof::softcap_ce` is a `torch.library.custom_op` with `register_autograd`, so
`torch.compile(fullgraph=True)` keeps it. Logits may be bf16 or fp32 (math in fp32; dz in z's dtype).
CPU tensors only under Triton's interpreter (TRITON_INTERPRET=1), as for the other kernels.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .ortho_triton import available, interpreting, tl, triton  # noqa: F401 - available: the toggle's check

if triton is not None:

    @triton.jit
    def _softcap(z, cap):
        """cap·tanh(z/cap), through exp (tl has no tanh in every backend)."""
        e = tl.exp(-2.0 * tl.abs(z) / cap)
        t = (1.0 - e) / (1.0 + e)
        return cap * tl.where(z >= 0, t, -t)

    @triton.jit
    def _softcap_ce_kernel(Z, T, LOSS, DZ, cap, inv_rows, R, V, szr, sdr,
                           ROWS: tl.constexpr, BLOCK_V: tl.constexpr):
        """Per row: loss = logsumexp(y) − y[t]; dz = (softmax(y) − onehot(t))·(1 − (y/cap)²)·inv_rows."""
        rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
        rmask = rows < R
        rows_c = rows % R
        tgt = tl.load(T + rows_c).to(tl.int32)
        cols = tl.arange(0, BLOCK_V)
        run_max = tl.full((ROWS,), float("-inf"), tl.float32)
        run_sum = tl.zeros((ROWS,), tl.float32)
        y_t = tl.zeros((ROWS,), tl.float32)
        for v0 in range(0, V, BLOCK_V):
            c = v0 + cols
            cm = c[None, :] < V
            z = tl.load(Z + rows_c[:, None] * szr + c[None, :], mask=cm, other=0.0).to(tl.float32)
            y = tl.where(cm, _softcap(z, cap), float("-inf"))
            new_max = tl.maximum(run_max, tl.max(y, axis=1))
            run_sum = run_sum * tl.exp(run_max - new_max) + tl.sum(tl.exp(y - new_max[:, None]), axis=1)
            run_max = new_max
            y_t += tl.sum(tl.where(c[None, :] == tgt[:, None], y, 0.0), axis=1)
        lse = run_max + tl.log(run_sum)
        tl.store(LOSS + rows, lse - y_t, mask=rmask)
        for v0 in range(0, V, BLOCK_V):
            c = v0 + cols
            cm = c[None, :] < V
            z = tl.load(Z + rows_c[:, None] * szr + c[None, :], mask=cm, other=0.0).to(tl.float32)
            y = _softcap(z, cap)
            p = tl.exp(y - lse[:, None]) - tl.where(c[None, :] == tgt[:, None], 1.0, 0.0)
            t = y / cap
            dz = p * (1.0 - t * t) * inv_rows
            tl.store(DZ + rows[:, None] * sdr + c[None, :], dz.to(DZ.dtype.element_ty), mask=rmask[:, None] & cm)


def _blocks(vocab: int) -> tuple[int, int]:
    """(ROWS, BLOCK_V): a whole 1024-token row in registers on GPUs; many rows a program in the interpreter."""
    block_v = min(triton.next_power_of_2(vocab), 1024 if interpreting() else 2048)
    return (256 if interpreting() else 2), block_v


def loss_and_grad(z: Tensor, targets: Tensor, cap: float) -> tuple[Tensor, Tensor]:
    """(mean loss as a 0-d fp32 tensor, dz / d mean loss) for logits z (R, V) and int targets (R,)."""
    if z.dim() != 2 or targets.shape != z.shape[:1]:
        raise ValueError(f"ce_triton: logits (R, V) and targets (R,) expected, got {tuple(z.shape)}, "
                         f"{tuple(targets.shape)}")
    z = z if z.stride(1) == 1 else z.contiguous()
    R, V = z.shape
    loss = torch.empty(R, device=z.device, dtype=torch.float32)
    dz = torch.empty(R, V, device=z.device, dtype=z.dtype)
    rows, block_v = _blocks(V)
    _softcap_ce_kernel[(triton.cdiv(R, rows),)](z, targets.contiguous(), loss, dz, cap, 1.0 / R, R, V, z.stride(0),
                                                dz.stride(0), ROWS=rows, BLOCK_V=block_v)
    return loss.mean(), dz


@torch.library.custom_op("golfprof::softcap_ce", mutates_args=())
def softcap_ce(z: Tensor, targets: Tensor, cap: float) -> tuple[Tensor, Tensor]:
    """(mean of CE(cap·tanh(z/cap), targets), its gradient with respect to z)."""
    return loss_and_grad(z, targets, cap)


@softcap_ce.register_fake
def _(z: Tensor, targets: Tensor, cap: float) -> tuple[Tensor, Tensor]:
    return z.new_empty((), dtype=torch.float32), torch.empty_like(z)


def _setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(output[1])


def _backward(ctx, g: Tensor, _gdz: Tensor):
    (dz,) = ctx.saved_tensors
    return dz * g.to(dz.dtype), None, None


softcap_ce.register_autograd(_backward, setup_context=_setup)


def cross_entropy(z: Tensor, targets: Tensor, cap: float) -> Tensor:
    """The model's call: mean softcapped CE of logits (..., V) against targets (...); differentiable."""
    loss, _ = softcap_ce(z.reshape(-1, z.shape[-1]), targets.reshape(-1), cap)
    return loss
