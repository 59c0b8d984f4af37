"""Triton kernels for the Newton–Schulz quintic and Polar Express orthogonalizers.

Same function as `ortho.orthogonalize(g, method, steps, torch.bfloat16)`: each step is

    A = X Xᵀ            (M×M, symmetric)           `_syrk_kernel`, lower tiles + mirror store
    B = b·A + c·A·A     (symmetric: A·A = A·Aᵀ)     `_syrk_kernel` again, with an epilogue
    X = a·X + B·X                                   `_update_kernel`, a batched GEMM + epilogue

bf16 operands, fp32 accumulation, bf16 results (A, B and X are rounded to bf16 between the
products, as the torch path's bf16 `baddbmm`s do). Tall inputs are orthogonalized through their
transposed view (strides, no copy), so the Gram matrix is the small side. The normalisation
X / (‖X‖·f + ε) is folded into the first step: its Gram product is scaled by s², its update by
s, with s = 1 / (‖X‖·f + ε) computed inside the kernels from the fp32 norm; so one reduction
launch plus 3 launches per step, and no normalised copy of the input.

Symmetry: the two Gram-side products compute only the tiles on or below the diagonal (T =
nt(nt+1)/2 of the nt² tiles) and store each off-diagonal tile twice (itself and transposed), so
they do about (nt+1)/(2nt) of the FLOPs `ortho.flops` counts for them. The achieved TFLOP/s the
benchmark reports are always against `ortho.flops` (the nominal count), so they can exceed what
the tensor cores did.

Block sizes: fixed per launch by `syrk_config` / `update_config` — the H100 sweep's winners for the
bank and shard shapes (`TUNED`), a heuristic fitted to the same sweep elsewhere; no autotuner (its
key lookup and first-call benchmarking would land in the optimizer step). Masks cover any M, N,
K; rows past the edge are clamped on load (their products land only in masked-off outputs), K
tails are masked.

Launches: on CUDA the iterations replay a CUDA graph (`OrthoSet`): per (shape, coefficients,
stream) for `orthogonalize_triton`, and one graph for all banks per optimizer step, fed by the
fused momentum kernel `momentum_into`, for the schedules. Measurements, predictions and what did
not help (programmatic dependent launch, prefetching the epilogue tile) are in
benchmarks/ortho_notes.md.

`available()` says whether the fast path can run here; CPU tensors are accepted only under
Triton's interpreter (TRITON_INTERPRET=1 set before this module is imported), which the tests use.
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch
from torch import Tensor

from .ortho import coefficients

try:  # triton is optional: without it the `triton` ortho kernel falls back to torch
    import triton
    import triton.language as tl

    _IMPORT_ERROR: str | None = None
except Exception as e:  # noqa: BLE001 (ImportError, or a broken install raising anything)
    triton = None  # type: ignore[assignment]
    tl = None  # type: ignore[assignment]
    _IMPORT_ERROR = f"{type(e).__name__}: {e}"

NORM_FACTORS = {"ns5": (1.0, 1e-7), "polar_express": (1.02, 1e-6)}  # ‖X‖·f + ε, as ortho.normalize
_MAX_GRID_Y = 65535


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "") == "1"


def available() -> tuple[bool, str]:
    """(True, what runs) when the Triton kernels can run on this process's GPU, else (False, why)."""
    if triton is None:
        return False, f"triton is not importable ({_IMPORT_ERROR}); install it (pip install triton)"
    if not torch.cuda.is_available():
        return False, "no CUDA device is visible to torch"
    if interpreting():
        return False, "TRITON_INTERPRET=1: Triton runs in its CPU interpreter here, far too slow for training"
    major, minor = torch.cuda.get_device_capability()
    if major < 8:
        return False, f"bf16 tensor cores need compute capability 8.0+, found {major}.{minor}"
    return True, f"triton {triton.__version__} on {torch.cuda.get_device_name()} (sm_{major}{minor})"


if triton is not None:

    @triton.jit
    def _lower_tile(t):
        """The t-th tile on or below the diagonal, row by row: (0,0), (1,0), (1,1), (2,0), ..."""
        i = ((tl.sqrt(8.0 * t + 1.0) - 1.0) * 0.5).to(tl.int32)
        i = tl.where((i + 1) * (i + 2) // 2 <= t, i + 1, i)  # fp32 sqrt rounding either way
        i = tl.where(i * (i + 1) // 2 > t, i - 1, i)
        return i, t - i * (i + 1) // 2

    @triton.jit
    def _round_bf16(x):
        """fp32 -> bf16 rounded to nearest even, by bits. For the interpreter only: its fp32->bf16
        cast truncates (GPUs round to nearest even), which would bias every stored A, B and X."""
        bits = x.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.to(tl.float32, bitcast=True).to(tl.bfloat16)

    @triton.jit
    def _syrk_kernel(X, C, OUT, NORM, alpha, beta, norm_mul, norm_eps, M, K,
                     sxb, sxm, sxk, scb, scm, scn, sob, som, son,
                     HAS_C: tl.constexpr, HAS_NORM: tl.constexpr, EVEN_K: tl.constexpr,
                     INTERP: tl.constexpr, BLOCK: tl.constexpr, BLOCK_K: tl.constexpr,
                     PREFETCH_C: tl.constexpr, USE_PDL: tl.constexpr):
        """OUT = alpha·s²·X Xᵀ + beta·C per matrix (C symmetric), lower tiles only, mirrored."""
        if USE_PDL:  # programmatic dependent launch: wait for the previous kernel before any access
            tl.extra.cuda.gdc_wait()
            tl.extra.cuda.gdc_launch_dependents()
        i, j = _lower_tile(tl.program_id(0))
        bat = tl.program_id(1).to(tl.int64)
        ri = i * BLOCK + tl.arange(0, BLOCK)
        rj = j * BLOCK + tl.arange(0, BLOCK)
        mi = ri < M
        mj = rj < M
        mask = mi[:, None] & mj[None, :]
        if HAS_C:
            pc = C + bat * scb + ri[:, None] * scm + rj[None, :] * scn
            if PREFETCH_C:  # issued before the main loop, so its latency hides behind it
                c = tl.load(pc, mask=mask, other=0.0)
        rk = tl.arange(0, BLOCK_K)
        xb = X + bat * sxb
        pa = xb + (ri % M)[:, None] * sxm + rk[None, :] * sxk  # clamped rows: no load masks
        pb = xb + (rj % M)[:, None] * sxm + rk[None, :] * sxk
        acc = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            if EVEN_K:
                a = tl.load(pa)
                b = tl.load(pb)
            else:
                km = rk[None, :] < K - k * BLOCK_K
                a = tl.load(pa, mask=km, other=0.0)
                b = tl.load(pb, mask=km, other=0.0)
            if INTERP:  # Triton's interpreter multiplies bf16 dot operands' raw uint16 bit patterns
                a = a.to(tl.float32)
                b = b.to(tl.float32)
            acc = tl.dot(a, tl.trans(b), acc)
            pa += BLOCK_K * sxk
            pb += BLOCK_K * sxk
        scale = alpha
        if HAS_NORM:
            s = 1.0 / (tl.load(NORM + bat) * norm_mul + norm_eps)
            scale = scale * s * s
        acc = acc * scale
        if HAS_C:
            if not PREFETCH_C:
                c = tl.load(pc, mask=mask, other=0.0)
            acc += beta * c.to(tl.float32)
        if INTERP:
            out = _round_bf16(acc)
        else:
            out = acc.to(OUT.dtype.element_ty)
        ob = OUT + bat * sob
        tl.store(ob + ri[:, None] * som + rj[None, :] * son, out, mask=mask)
        if i != j:
            tl.store(ob + rj[:, None] * som + ri[None, :] * son, tl.trans(out),
                     mask=mj[:, None] & mi[None, :])

    @triton.jit
    def _update_kernel(B, X, OUT, NORM, alpha, beta, norm_mul, norm_eps, M, N,
                       sbb, sbm, sbk, sxb, sxm, sxn, sob, som, son,
                       HAS_NORM: tl.constexpr, EVEN_K: tl.constexpr, INTERP: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                       PREFETCH_C: tl.constexpr, USE_PDL: tl.constexpr):
        """OUT = s·(alpha·B X + beta·X) per matrix; B is (M, M), X and OUT (M, N)."""
        if USE_PDL:
            tl.extra.cuda.gdc_wait()
            tl.extra.cuda.gdc_launch_dependents()
        pid = tl.program_id(0)
        bat = tl.program_id(1).to(tl.int64)
        tiles_n = tl.cdiv(N, BLOCK_N)
        pm = pid // tiles_n
        pn = pid % tiles_n
        rm = pm * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pn * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        xb = X + bat * sxb
        mask = (rm < M)[:, None] & (rn < N)[None, :]
        pc = xb + rm[:, None] * sxm + rn[None, :] * sxn
        if PREFETCH_C:
            x = tl.load(pc, mask=mask, other=0.0)
        pa = B + bat * sbb + (rm % M)[:, None] * sbm + rk[None, :] * sbk
        pb = xb + rk[:, None] * sxm + (rn % N)[None, :] * sxn
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(0, tl.cdiv(M, BLOCK_K)):
            if EVEN_K:
                a = tl.load(pa)
                b = tl.load(pb)
            else:
                left = M - k * BLOCK_K
                a = tl.load(pa, mask=rk[None, :] < left, other=0.0)
                b = tl.load(pb, mask=rk[:, None] < left, other=0.0)
            if INTERP:
                a = a.to(tl.float32)
                b = b.to(tl.float32)
            acc = tl.dot(a, b, acc)
            pa += BLOCK_K * sbk
            pb += BLOCK_K * sxm
        if not PREFETCH_C:
            x = tl.load(pc, mask=mask, other=0.0)
        acc = alpha * acc + beta * x.to(tl.float32)
        if HAS_NORM:
            acc = acc * (1.0 / (tl.load(NORM + bat) * norm_mul + norm_eps))
        if INTERP:
            out = _round_bf16(acc)
        else:
            out = acc.to(OUT.dtype.element_ty)
        tl.store(OUT + bat * sob + rm[:, None] * som + rn[None, :] * son, out, mask=mask)

    @triton.jit
    def _momentum_kernel(G, MOM, U, mu, n, MOM_BF16: tl.constexpr, INTERP: tl.constexpr, BLOCK: tl.constexpr):
        """M <- mu·M + g; U <- g + mu·M, in bf16 (`optim.nesterov_` in one pass over memory)."""
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        g = tl.load(G + offs, mask=mask, other=0.0).to(tl.float32)
        m = mu * tl.load(MOM + offs, mask=mask, other=0.0).to(tl.float32) + g
        if MOM_BF16 and INTERP:
            m_st = _round_bf16(m)
        else:
            m_st = m.to(MOM.dtype.element_ty)
        tl.store(MOM + offs, m_st, mask=mask)
        u = g + mu * m_st.to(tl.float32)  # the stored momentum, as nesterov_ reads it back
        if INTERP:
            u_st = _round_bf16(u)
        else:
            u_st = u.to(tl.bfloat16)
        tl.store(U + offs, u_st, mask=mask)


# ---- launch configurations ------------------------------------------------------------------
# syrk: (BLOCK, BLOCK_K, num_warps, num_stages, PREFETCH_C); update: (BLOCK_M, BLOCK_N, BLOCK_K,
# num_warps, num_stages, PREFETCH_C). `TUNED` holds the H100 sweep's winners for the shapes the
# trainer uses (benchmarks/ortho_notes.md, benchmarks/results/ortho_h100_sweep.json); other shapes
# get `_heuristic_*`, fitted to the same sweep. The interpreter gets small blocks so the CPU tests
# see several tiles, ragged edges and the mirror store.
SyrkCfg = tuple[int, int, int, int, bool]
UpdateCfg = tuple[int, int, int, int, int, bool]
TUNED: dict[tuple, tuple] = {  # run 3's sweep winners (benchmarks/results/ortho_h100_sweep.json)
    ('syrk', False, 22, 512, 512): (128, 64, 4, 3, False),  # 11.64 us (run-3 heuristic 11.66)
    ('syrk', True, 22, 512, 512): (128, 64, 4, 3, False),  # 13.23 us (run-3 heuristic 13.30)
    ('update', 22, 512, 512): (128, 128, 64, 8, 3, False),  # 18.77 us (run-3 heuristic 18.76)
    ('syrk', False, 22, 256, 512): (64, 64, 4, 3, False),  # 6.27 us (run-3 heuristic 6.27)
    ('syrk', True, 22, 256, 256): (64, 64, 4, 3, True),  # 5.47 us (run-3 heuristic 5.64)
    ('update', 22, 256, 512): (128, 128, 64, 4, 3, False),  # 8.66 us (run-3 heuristic 9.28)
    ('syrk', False, 11, 512, 1536): (128, 64, 8, 4, False),  # 13.10 us (run-3 heuristic 13.10)
    ('syrk', True, 11, 512, 512): (64, 64, 4, 3, True),  # 8.38 us (run-3 heuristic 8.42)
    ('update', 11, 512, 1536): (128, 128, 64, 8, 3, False),  # 26.14 us (run-3 heuristic 26.03)
    ('syrk', False, 2, 512, 512): (64, 64, 4, 3, False),  # 4.44 us (run-3 heuristic 4.45)
    ('syrk', True, 2, 512, 512): (64, 64, 4, 3, True),  # 4.70 us (run-3 heuristic 4.87)
    ('update', 2, 512, 512): (64, 64, 64, 4, 3, True),  # 4.76 us (run-3 heuristic 4.82)
    ('syrk', False, 3, 256, 512): (64, 64, 4, 3, False),  # 4.34 us (run-3 heuristic 4.31)
    ('syrk', True, 3, 256, 256): (64, 64, 4, 3, True),  # 3.95 us (run-3 heuristic 4.16)
    ('update', 3, 256, 512): (64, 64, 64, 4, 3, True),  # 3.99 us (run-3 heuristic 4.04)
    ('syrk', False, 8, 512, 1536): (128, 64, 8, 4, False),  # 12.27 us (run-3 heuristic 12.32)
    ('syrk', True, 8, 512, 512): (64, 64, 4, 3, True),  # 7.86 us (run-3 heuristic 7.94)
    ('update', 8, 512, 1536): (128, 128, 64, 8, 3, False),  # 18.93 us (run-3 heuristic 18.95)
}
INTERP_SYRK: SyrkCfg = (16, 16, 1, 1, True)
INTERP_UPDATE: UpdateCfg = (16, 32, 16, 1, 1, False)
# Forces one config for every launch of a kind (sweeps, tests): {"syrk": SyrkCfg, "update": UpdateCfg}.
CONFIG_OVERRIDE: dict[str, tuple] = {}


@lru_cache(maxsize=None)
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _heuristic_syrk(batch: int, m: int, k: int, has_c: bool, sms: int) -> SyrkCfg:
    """128-blocks once the lower triangle fills the SMs (or half of them with a long K), else 64."""
    nt = -(-m // 128)
    tiles = batch * nt * (nt + 1) // 2
    if tiles >= sms or (k >= 1024 and 2 * tiles >= sms):
        return (128, 64, 8, 4, False) if k >= 1024 else (128, 64, 4, 3, False)
    return 64, 64, 4, 3, has_c


def _heuristic_update(batch: int, m: int, n: int, sms: int) -> UpdateCfg:
    if batch * -(-m // 128) * -(-n // 128) >= sms:
        return 128, 128, 64, 8, 3, False
    return 64, 64, 64, 4, 3, True


def syrk_config(batch: int, m: int, k: int, has_c: bool, device_index: int | None) -> SyrkCfg:
    if "syrk" in CONFIG_OVERRIDE:
        return CONFIG_OVERRIDE["syrk"]
    if device_index is None:
        return INTERP_SYRK
    cfg = TUNED.get(("syrk", has_c, batch, m, k))
    return cfg or _heuristic_syrk(batch, m, k, has_c, _sm_count(device_index))


def update_config(batch: int, m: int, n: int, device_index: int | None) -> UpdateCfg:
    if "update" in CONFIG_OVERRIDE:
        return CONFIG_OVERRIDE["update"]
    if device_index is None:
        return INTERP_UPDATE
    return TUNED.get(("update", batch, m, n)) or _heuristic_update(batch, m, n, _sm_count(device_index))


def load_tuned(sweep: list[dict]) -> dict[tuple, tuple]:
    """TUNED entries from `ortho_bench.sweep_configs` rows (their `best` config per shape)."""
    for r in sweep:
        if not r.get("best"):
            continue
        b, m, n = r["shape"]
        cfg = tuple(r["best"]["config"])
        key = {"xxt": ("syrk", False, b, m, n), "aa": ("syrk", True, b, m, m), "bx": ("update", b, m, n)}[r["product"]]
        TUNED[key] = cfg
    return TUNED


def _dev(t: Tensor) -> int | None:
    return t.device.index if t.is_cuda else None


# Programmatic dependent launch (Hopper+): each kernel may be launched while the previous one's
# last wave runs; its programs wait (griddepcontrol.wait) before touching memory, so only launch
# latency and tails overlap. Off by default: on the H100 it made the four banks 0.07 ms slower
# (0.904 vs 0.835 ms GPU time, graphs on both; benchmarks/ortho_notes.md). GOLFPROF_ORTHO_PDL=1
# turns it on.
PDL_DEFAULT = os.environ.get("GOLFPROF_ORTHO_PDL", "0") == "1"


@lru_cache(maxsize=None)
def _pdl_capable(device_index: int) -> bool:
    return torch.cuda.get_device_capability(device_index)[0] >= 9


def _pdl(device_index: int | None) -> bool:
    return PDL_DEFAULT and device_index is not None and _pdl_capable(device_index)


def _launch_opts(device_index: int | None, warps: int, stages: int) -> dict:
    opts = {"num_warps": warps, "num_stages": stages}
    if _pdl(device_index):
        opts["launch_pdl"] = True
    return opts


def _syrk(x: Tensor, c: Tensor | None, out: Tensor, alpha: float, beta: float,
          norm: Tensor | None, norm_mul: float, norm_eps: float) -> None:
    """out = alpha·s²·x xᵀ (+ beta·c): batched (B, M, K) -> (B, M, M)."""
    batch, m, k = x.shape
    di = _dev(x)
    block, block_k, warps, stages, prefetch = syrk_config(batch, m, k, c is not None, di)
    nt = -(-m // block)
    cc = out if c is None else c
    nn = out if norm is None else norm
    for b0 in range(0, batch, _MAX_GRID_Y):
        b1 = min(batch, b0 + _MAX_GRID_Y)
        xs, cs, os_, ns = (x, cc, out, nn) if batch <= _MAX_GRID_Y else (x[b0:b1], cc[b0:b1], out[b0:b1], nn[b0:b1])
        _syrk_kernel[(nt * (nt + 1) // 2, b1 - b0)](
            xs, cs, os_, ns, alpha, beta, norm_mul, norm_eps, m, k,
            *xs.stride(), *cs.stride(), *os_.stride(),
            HAS_C=c is not None, HAS_NORM=norm is not None, EVEN_K=k % block_k == 0, INTERP=di is None,
            BLOCK=block, BLOCK_K=block_k, PREFETCH_C=prefetch, USE_PDL=_pdl(di), **_launch_opts(di, warps, stages))


def _update(bm: Tensor, x: Tensor, out: Tensor, alpha: float, beta: float,
            norm: Tensor | None, norm_mul: float, norm_eps: float) -> None:
    """out = s·(alpha·bm x + beta·x): batched (B, M, M) @ (B, M, N)."""
    batch, m, n = x.shape
    di = _dev(x)
    bm_, bn_, bk, warps, stages, prefetch = update_config(batch, m, n, di)
    tiles = -(-m // bm_) * -(-n // bn_)
    nn = out if norm is None else norm
    for b0 in range(0, batch, _MAX_GRID_Y):
        b1 = min(batch, b0 + _MAX_GRID_Y)
        bs, xs, os_, ns = (bm, x, out, nn) if batch <= _MAX_GRID_Y else (bm[b0:b1], x[b0:b1], out[b0:b1], nn[b0:b1])
        _update_kernel[(tiles, b1 - b0)](
            bs, xs, os_, ns, alpha, beta, norm_mul, norm_eps, m, n,
            *bs.stride(), *xs.stride(), *os_.stride(),
            HAS_NORM=norm is not None, EVEN_K=m % bk == 0, INTERP=di is None,
            BLOCK_M=bm_, BLOCK_N=bn_, BLOCK_K=bk, PREFETCH_C=prefetch, USE_PDL=_pdl(di),
            **_launch_opts(di, warps, stages))


_MOMENTUM_BLOCK = 4096


def momentum_into(buf: Tensor, grad: Tensor, mu: float, out: Tensor | None = None) -> Tensor:
    """`optim.nesterov_(buf, grad, mu)` cast to bf16, written into `out` (e.g. an `OrthoSet`
    input; a new tensor if None) by one kernel: reads g and M once, writes M and U once, where the
    torch ops make five passes. M rounds once per step (torch rounds mu·M, then the sum)."""
    if out is None:
        out = torch.empty(grad.shape, device=grad.device, dtype=torch.bfloat16)
    if not (grad.shape == buf.shape and grad.numel() == out.numel() and out.dtype == torch.bfloat16
            and buf.dtype in (torch.bfloat16, torch.float32)):
        raise ValueError(f"momentum_into: grad {tuple(grad.shape)} {grad.dtype}, momentum {tuple(buf.shape)} "
                         f"{buf.dtype}, out {tuple(out.shape)} {out.dtype}")
    if not (grad.is_contiguous() and buf.is_contiguous() and out.is_contiguous()):
        from .optim import nesterov_
        out.view(grad.shape).copy_(nesterov_(buf, grad, mu))
        return out
    n = grad.numel()
    di = _dev(grad)
    _momentum_kernel[(triton.cdiv(n, _MOMENTUM_BLOCK),)](
        grad, buf, out, float(mu), n, MOM_BF16=buf.dtype == torch.bfloat16, INTERP=di is None,
        BLOCK=_MOMENTUM_BLOCK, num_warps=8)
    return out


def _steps(cur: Tensor, norm: Tensor, coeffs, A: Tensor, Bm: Tensor, bufs: list[Tensor], out: Tensor | None,
           norm_mul: float, norm_eps: float) -> Tensor:
    """The iterations; the last update writes `out`, or, with out=None, is left to the caller
    (which then reads the returned X and `Bm`)."""
    last = len(coeffs) - 1
    for step, (a, b, c) in enumerate(coeffs):
        nrm = norm if step == 0 else None
        _syrk(cur, None, A, 1.0, 0.0, nrm, norm_mul, norm_eps)   # A = s²·X Xᵀ
        _syrk(A, A, Bm, c, b, None, norm_mul, norm_eps)          # B = b·A + c·A Aᵀ
        if step == last:
            if out is not None:
                _update(Bm, cur, out, 1.0, a, nrm, norm_mul, norm_eps)
            return cur if out is None else out
        nxt = bufs[step % 2]
        _update(Bm, cur, nxt, 1.0, a, nrm, norm_mul, norm_eps)  # X = s·(a·X + B X)
        cur = nxt
    return cur


# ---- CUDA graphs ----------------------------------------------------------------------------
# One call is 3 launches per step + a norm. On the H100 machines here a launch costs the host
# ~40 µs (Triton's and torch's alike), more than the kernels take, so on CUDA the iterations run
# as CUDA graph replays. `OrthoSet` holds the static buffers of a fixed list of matrix stacks and
# one graph for all of them: the optimizer writes its momentum straight into `inputs` (no copy) and
# replays once per step, the banks' chains spread over `branches` streams inside the graph so one
# bank's kernels fill the others' partial waves. `orthogonalize_triton` (one tensor, any strides,
# fresh output) keeps a one-item set per (shape, coefficients, stream), captured without the last
# update, which it launches eagerly into a new tensor: copy in, replay, update (3 launches).
# Costs: the static buffers stay allocated (input, 2 X buffers, output, A, B: about 4× the inputs
# + 2 Gram matrices; ~250 MB for the four full-preset banks); `clear_graphs()` frees the cached
# ones. The first run of a set is eager (compiles), the second captures. GOLFPROF_ORTHO_GRAPHS=0
# (or graphs=False) launches plainly; GOLFPROF_ORTHO_BRANCHES sets the default branch count.
GRAPHS_DEFAULT = os.environ.get("GOLFPROF_ORTHO_GRAPHS", "1") != "0"
BRANCHES_DEFAULT = int(os.environ.get("GOLFPROF_ORTHO_BRANCHES", "2"))  # H100: 2 beat 1 by 8% (ortho_notes.md)


class _Chain:
    """The buffers of one (..., m, n) stack, orthogonalized through its wide (m ≤ n) view."""

    def __init__(self, inp: Tensor, coeffs) -> None:
        self.tall = inp.size(-2) > inp.size(-1)
        x = inp.mT if self.tall else inp
        self.lead, (m, n) = x.shape[:-2], tuple(x.shape[-2:])
        self.x3 = x.reshape(-1, m, n)  # a view (inp is contiguous): writes to inp reach it
        assert self.x3.data_ptr() == inp.data_ptr(), "reshape copied: inputs would not reach the chain"
        batch, dev = self.x3.size(0), inp.device
        self.flops = batch * len(coeffs) * (4 * m * m * n + 2 * m ** 3)
        self.norm = torch.empty(batch, device=dev, dtype=torch.float32)
        self.A = torch.empty(batch, m, m, device=dev, dtype=torch.bfloat16)
        self.Bm = torch.empty_like(self.A)
        self.bufs = [torch.empty(batch, m, n, device=dev, dtype=torch.bfloat16) for _ in range(min(2, len(coeffs) - 1))]
        self.cur: Tensor | None = None  # X before the last update (static_out=False)

    def shaped(self, out3: Tensor) -> Tensor:
        out = out3.reshape(*self.lead, *out3.shape[-2:])
        return out.mT if self.tall else out


class OrthoSet:
    """`ortho.orthogonalize` of the same list of shapes on every call, as one CUDA graph replay.

    Write each call's matrices into `inputs[i]` (bf16, contiguous, `shapes[i]`; e.g. with
    `momentum_into`), then `run()`. With `static_out` (default) the whole computation is in the
    graph and `run()` returns `outputs`, static tensors overwritten by the next run; without it the
    last update is launched eagerly into fresh tensors (what `orthogonalize_triton` returns).
    On the CPU (Triton's interpreter) or with graphs off, `run()` launches the kernels plainly.
    """

    def __init__(self, shapes: list[tuple[int, ...]], device: torch.device | str, method: str = "ns5",
                 steps: int = 5, graphs: bool | None = None, branches: int | None = None,
                 static_out: bool = True) -> None:
        device = torch.device(device)
        for s in shapes:
            if len(s) < 2 or 0 in s:
                raise ValueError(f"expected non-empty (..., m, n) shapes, got {tuple(s)}")
        self.coeffs = coefficients(method, steps)
        if not self.coeffs:
            raise ValueError("OrthoSet needs at least one iteration")
        self.norm_mul, self.norm_eps = NORM_FACTORS[method]
        self.cuda = device.type == "cuda"
        self.graphs = self.cuda and (GRAPHS_DEFAULT if graphs is None else graphs)
        self.static_out = static_out
        self.inputs = [torch.empty(s, device=device, dtype=torch.bfloat16) for s in shapes]
        self.chains = [_Chain(t, self.coeffs) for t in self.inputs]
        # x3's strides: the outputs are contiguous in the callers' shapes, like the inputs
        self._out3 = [torch.empty_like(c.x3) for c in self.chains] if static_out else []
        self.outputs = [c.shaped(o) for c, o in zip(self.chains, self._out3)]
        n = max(1, min(BRANCHES_DEFAULT if branches is None else branches, len(shapes))) if self.cuda else 1
        self.branch_of = _balance([c.flops for c in self.chains], n)
        self.streams = [torch.cuda.Stream(device) for _ in range(n - 1)] if self.cuda else []
        self.graph: torch.cuda.CUDAGraph | None = None
        self.calls = 0
        self.error: str | None = None

    def _chain(self, c: _Chain, out3: Tensor | None) -> None:
        torch.linalg.vector_norm(c.x3, dim=(-2, -1), dtype=torch.float32, out=c.norm)
        c.cur = _steps(c.x3, c.norm, self.coeffs, c.A, c.Bm, c.bufs, out3, self.norm_mul, self.norm_eps)

    def _body(self) -> None:
        outs = self._out3 or [None] * len(self.chains)
        if not self.streams:
            for c, o in zip(self.chains, outs):
                self._chain(c, o)
            return
        main = torch.cuda.current_stream(self.inputs[0].device)
        streams = [main, *self.streams]
        for s in self.streams:
            s.wait_stream(main)
        for c, o, b in zip(self.chains, outs, self.branch_of):
            with torch.cuda.stream(streams[b]):
                self._chain(c, o)
        for s in self.streams:
            main.wait_stream(s)

    def run(self) -> list[Tensor]:
        if self.graphs and self.calls == 1 and self.error is None:
            try:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    self._body()
                self.graph = graph
            except Exception as e:  # noqa: BLE001 (keep training: plain launches from here on)
                self.error = f"{type(e).__name__}: {e}"
                _warn_once(f"ortho_triton: CUDA graph capture failed, launching eagerly ({self.error})")
        self.calls += 1
        if self.graph is not None:
            self.graph.replay()
        else:
            self._body()
        if self.static_out:
            return self.outputs
        outs = []
        single = len(self.coeffs) == 1  # the only update is also the first: it applies the norm
        for c in self.chains:
            out3 = torch.empty_like(c.x3, memory_format=torch.contiguous_format)
            _update(c.Bm, c.cur, out3, 1.0, self.coeffs[-1][0], c.norm if single else None, self.norm_mul,
                    self.norm_eps)
            outs.append(c.shaped(out3))
        return outs


def _balance(work: list[int], n: int) -> list[int]:
    """Branch per item: biggest first onto the least-loaded branch (longest-processing-time)."""
    load = [0] * n
    out = [0] * len(work)
    for i in sorted(range(len(work)), key=lambda i: -work[i]):
        b = min(range(n), key=load.__getitem__)
        out[i], load[b] = b, load[b] + work[i]
    return out


_PLANS: dict[tuple, OrthoSet] = {}
_WARNED: set[str] = set()


def _warn_once(msg: str) -> None:
    if msg not in _WARNED:
        _WARNED.add(msg)
        import warnings
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def clear_graphs() -> None:
    """Drop the cached graphs of `orthogonalize_triton` and their static buffers."""
    _PLANS.clear()


def orthogonalize_triton(g: Tensor, method: str = "ns5", steps: int = 5,
                         dtype: torch.dtype | None = torch.bfloat16, graphs: bool | None = None) -> Tensor:
    """`ortho.orthogonalize(g, method, steps, torch.bfloat16)` through the Triton kernels.

    g: (..., m, n) of any float dtype and strides (views such as `u.split(...)` parts or `.mT`
    are read in place); returns a new bf16 tensor of g's shape (a transposed view for tall g, as
    the torch path returns). `graphs` (CUDA only; default GOLFPROF_ORTHO_GRAPHS, on): replay a
    captured CUDA graph per shape, see above.
    """
    if dtype not in (None, torch.bfloat16):
        raise ValueError(f"the triton orthogonalizer computes in bfloat16, not {dtype}")
    if triton is None:
        raise RuntimeError(available()[1])
    if not g.is_cuda and not interpreting():
        raise RuntimeError(f"orthogonalize_triton needs a CUDA tensor (got {g.device}); "
                           "on the CPU only under TRITON_INTERPRET=1")
    if g.dim() < 2:
        raise ValueError(f"expected (..., m, n), got shape {tuple(g.shape)}")
    coeffs = coefficients(method, steps)
    norm_mul, norm_eps = NORM_FACTORS[method]
    x = g if g.dtype == torch.bfloat16 else g.to(torch.bfloat16)
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    lead, (m, n) = x.shape[:-2], x.shape[-2:]
    x3 = x.reshape(-1, m, n)
    batch = x3.size(0)
    if x3.numel() == 0:
        out = x3.clone()
    elif not coeffs:
        norm = torch.linalg.vector_norm(x3, dim=(-2, -1), dtype=torch.float32)
        out = (x3.float() / (norm * norm_mul + norm_eps)[:, None, None]).to(torch.bfloat16)
    elif x3.is_cuda and (GRAPHS_DEFAULT if graphs is None else graphs) and not torch.cuda.is_current_stream_capturing():
        # the set's input in the caller's orientation: its kernels then read the same layout (and
        # the norm reduces in the same order) as the plain launches below on a contiguous g
        shape3 = (batch, n, m) if tall else (batch, m, n)
        key = (x3.device.index, torch.cuda.current_stream(x3.device).cuda_stream, shape3,
               coeffs, norm_mul, norm_eps, _pdl(x3.device.index))
        plan = _PLANS.get(key)
        if plan is None:
            plan = _PLANS[key] = OrthoSet([shape3], x3.device, method, steps, graphs=True, static_out=False)
        plan.inputs[0].copy_(x3.mT if tall else x3)
        o = plan.run()[0]
        out = o.mT if tall else o  # (batch, m, n), contiguous
    else:
        dev = x3.device
        norm = torch.linalg.vector_norm(x3, dim=(-2, -1), dtype=torch.float32)
        A = torch.empty(batch, m, m, device=dev, dtype=torch.bfloat16)
        Bm = torch.empty_like(A)
        bufs = [torch.empty(batch, m, n, device=dev, dtype=torch.bfloat16) for _ in range(min(2, len(coeffs) - 1))]
        out = torch.empty(batch, m, n, device=dev, dtype=torch.bfloat16)
        _steps(x3, norm, coeffs, A, Bm, bufs, out, norm_mul, norm_eps)
    out = out.reshape(*lead, m, n)
    return out.mT if tall else out
