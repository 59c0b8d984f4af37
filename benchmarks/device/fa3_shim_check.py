"""The FA3 shim on a GPU (issue 24 item 4): each kernel against fp32 math at the records' attention shapes, its
cost against calling SDPA directly, the varlen document mask at a varlen record's packed size, both functions
under torch.compile(fullgraph=True), and the default `auto` picks. One JSON on stdout.

Run from outside the repo root with golfprof importable: python3 fa3_shim_check.py > fa3_shim_h200.json
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np
import torch

from golfprof.model import fa3_shim as S
from golfprof.model import synthetic

DEV = torch.device("cuda")
B, T, H, HKV, D = 6, 2048, 8, 4, 64  # one micro-batch of the banking record at world 8 (48 seqs / 8)
VARLEN_TOKENS = 98_304  # the varlen record's tokens per rank and micro-step (786,432 / 8)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def timed(fn, reps: int = 20, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def leaves(shape_q, shape_k, dtype=torch.bfloat16, seed=0):
    g = torch.Generator(device=DEV).manual_seed(seed)
    return [torch.randn(s, device=DEV, dtype=dtype, generator=g).requires_grad_() for s in (shape_q, shape_k, shape_k)]


def dense(kind: str) -> dict:
    S.configure(kind)
    q, k, v = leaves((B, T, H, D), (B, T, HKV, D))
    dy = torch.randn(B, T, H, D, device=DEV, dtype=torch.bfloat16)
    out = S.flash_attn_func(q, k, v, causal=True)
    grads = torch.autograd.grad(out, (q, k, v), dy)
    ref_in = [t[:2].detach().float().requires_grad_() for t in (q, k, v)]
    S.configure("math")
    ref = S.flash_attn_func(*ref_in, causal=True)
    ref_grads = torch.autograd.grad(ref, ref_in, dy[:2].float())
    S.configure(kind)
    errs = {"out": rel(out[:2], ref), **{f"d{c}": rel(g[:2], r) for c, g, r in zip("qkv", grads, ref_grads)}}

    def shim_step():
        q.grad = k.grad = v.grad = None
        S.flash_attn_func(q, k, v, causal=True).backward(dy)

    qh, kh, vh = (t.detach().transpose(1, 2).contiguous().requires_grad_() for t in (q, k, v))
    dyh = dy.transpose(1, 2).contiguous()

    def direct_step():  # SDPA on (B, H, T, D) tensors as golfprof's own trainer calls it
        qh.grad = kh.grad = vh.grad = None
        S._kernel(qh, kh, vh, D ** -0.5, True, kind).backward(dyh)

    return {"kind": kind, "rel_err_vs_fp32_math": errs, "ms_fwd_bwd_shim": timed(shim_step),
            "ms_fwd_bwd_direct_bhtd": timed(direct_step)}


def cu_from_bos(tokens: np.ndarray) -> torch.Tensor:
    """Document starts at BOS, padded to a multiple of 64 entries with the total, as the varlen records do."""
    starts = np.flatnonzero(tokens == synthetic.BOS).tolist()
    if not starts or starts[0] != 0:
        starts = [0] + starts
    bounds = starts + [len(tokens)]
    padded = -(-len(bounds) // 64) * 64
    return torch.tensor(bounds + [len(tokens)] * (padded - len(bounds)), dtype=torch.int32, device=DEV)


def varlen() -> dict:
    chain = synthetic._Chain(1024, 0)
    cu = cu_from_bos(chain.sample(VARLEN_TOKENS, [0, 9, 0]))
    docs = int((cu[1:] > cu[:-1]).sum())
    S.configure("cudnn")
    q, k, v = leaves((VARLEN_TOKENS, H, D), (VARLEN_TOKENS, HKV, D))
    path = S.varlen_path("cudnn", q, k, v)
    dy = torch.randn(VARLEN_TOKENS, H, D, device=DEV, dtype=torch.bfloat16)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = S.flash_attn_varlen_func(q, k, v, cu, cu, 2048, 2048, causal=True)
    grads = torch.autograd.grad(out, (q, k, v), dy)
    torch.cuda.synchronize()
    first_s = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20
    ref_in = [t.detach().float().requires_grad_() for t in (q, k, v)]
    ref = S.varlen_attention(*ref_in, cu, cu, D ** -0.5, True, "math", "per_document")
    ref_grads = torch.autograd.grad(ref, ref_in, dy.float())
    errs = {"out": rel(out, ref), **{f"d{c}": rel(g, r) for c, g, r in zip("qkv", grads, ref_grads)}}

    def step():
        q.grad = k.grad = v.grad = None
        S.flash_attn_varlen_func(q, k, v, cu, cu, 2048, 2048, causal=True).backward(dy)

    return {"tokens": VARLEN_TOKENS, "documents": docs, "cu_entries": cu.numel(), "path": path,
            "rel_err_vs_fp32_per_document_math": errs, "first_call_s": first_s, "peak_mib_first_call": peak,
            "ms_fwd_bwd_eager": timed(step, reps=10, warmup=3)}


class Attn(torch.nn.Module):
    """A projection around each shim function, compiled whole as the records compile their model."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = torch.nn.Linear(H * D, (H + 2 * HKV) * D, bias=False, device=DEV, dtype=torch.bfloat16)

    def forward(self, x: torch.Tensor, cu: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self.qkv(x).split([H * D, HKV * D, HKV * D], dim=-1)
        if cu is None:
            return S.flash_attn_func(q.unflatten(-1, (H, D)), k.unflatten(-1, (HKV, D)), v.unflatten(-1, (HKV, D)),
                                     causal=True)
        return S.flash_attn_varlen_func(q[0].unflatten(-1, (H, D)), k[0].unflatten(-1, (HKV, D)),
                                        v[0].unflatten(-1, (HKV, D)), cu, cu, 2048, 2048, causal=True)[None]


def compiled(kind: str) -> dict:
    S.configure(kind)
    torch.manual_seed(0)
    m = Attn()
    cm = torch.compile(m, fullgraph=True, dynamic=False)
    x = torch.randn(1, 8192, H * D, device=DEV, dtype=torch.bfloat16)
    cu = cu_from_bos(synthetic._Chain(1024, 0).sample(8192, [0, 9, 1]))
    res = {"kind": kind}
    for name, c in (("flash_attn_func", None), ("flash_attn_varlen_func", cu)):
        t0 = time.perf_counter()
        y = cm(x, c)
        y.float().sum().backward()
        torch.cuda.synchronize()
        g_c = m.qkv.weight.grad.clone()
        m.qkv.weight.grad = None
        y_e = m(x, c)
        y_e.float().sum().backward()
        g_e = m.qkv.weight.grad.clone()
        m.qkv.weight.grad = None
        res[name] = {"compile_s": time.perf_counter() - t0, "rel_out_vs_eager": rel(y, y_e),
                     "rel_grad_vs_eager": rel(g_c, g_e)}
    return res


def main() -> None:
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
              "cudnn": torch.backends.cudnn.version(), "command": " ".join(sys.argv),
              "shape": {"batch": B, "seq_len": T, "heads": H, "kv_heads": HKV, "head_dim": D, "dtype": "bf16"}}
    result["dense"] = [dense(k) for k in ("cudnn", "flash", "flex")]
    result["varlen"] = varlen()
    result["compiled"] = [compiled(k) for k in ("cudnn", "flex")]
    t0 = time.perf_counter()
    kind, why = S.resolve_kind("auto")
    result["auto"] = {"kind": kind, "why": why, "decided_in_s": time.perf_counter() - t0}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
