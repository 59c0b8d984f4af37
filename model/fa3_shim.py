"""FlashAttention-3's `flash_attn_interface` for scripts that import it where FA3 is not installed.

The parameter-golf records call `flash_attn_func(q, k, v, causal=True)` on (B, T, H, D) tensors and, in later
records, `flash_attn_varlen_func` on packed (total, H, D) tensors with `cu_seqlens`. This module gives both
functions FA3's signatures (hopper/flash_attn_interface.py) and its return convention (the output alone;
`(out, softmax_lse)` with `return_attn_probs=True`), computed by PyTorch instead:

- `flash_attn_func`: SDPA pinned to one kernel (`cudnn`, `flash`, `math`) with `sdpa_kernel`, or
  `flex_attention` with a causal block mask (`flex`); GQA through SDPA's `enable_gqa`.
- `flash_attn_varlen_func`: `flex_attention` with a document mask built from `cu_seqlens` where flex runs
  (a CUDA device; on the CPU only without gradients), else an exact per-document loop over the kernel above
  (one SDPA call per document: a host sync, so not inside `torch.compile(fullgraph=True)`).

Causal masks are aligned to the bottom right as in FA3 (query i of Tq sees keys up to i + Tk - Tq); a query
row with no key gets zeros. What FA3 has and this shim does not (sliding windows, softcap, fp8 descales, `qv`,
`seqused_*`, attention chunks) raises NotImplementedError naming the argument; FA3's tuning knobs
(`num_splits`, `pack_gqa`, `deterministic`, `sm_margin`) are accepted and change nothing.

`install(kind)` makes `import flash_attn_interface` give this module, in this process and in the processes it
starts, and returns the label of the attention that really runs, which the run record carries.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from golfprof.errors import ConfigError, GolfprofWarning

from . import attention as A

if TYPE_CHECKING:
    from torch import Tensor

KINDS = ("cudnn", "flash", "flex", "math")
AUTO = "auto"
MODULE = A.FA3_MODULE  # the name the scripts import
ENV = "GOLFPROF_FA3_SHIM"  # JSON of describe(), for the processes install() starts and for their run records
LABEL_PREFIX = "fa3-shim/"


class _State:
    kind = "math"
    requested = "math"
    why = ""


_STATE = _State()


def configure(kind: str, requested: str | None = None, why: str = "") -> None:
    """Pin the kernel both functions use in this process (the generated module calls this on import)."""
    if kind not in KINDS:
        raise ConfigError(f"--attention-shim {kind!r}: valid: {AUTO}, {', '.join(KINDS)}")
    _STATE.kind, _STATE.requested, _STATE.why = kind, requested or kind, why


def label(kind: str | None = None) -> str:
    """What the run record and reports say ran: `fa3-shim/<kind>`, never to be read as FlashAttention-3."""
    return LABEL_PREFIX + (kind or _STATE.kind)


def describe(cuda: bool | None = None) -> dict[str, Any]:
    """The shim as a run record states it: the kernel behind each function, what was asked for and why not."""
    import torch

    cuda = torch.cuda.is_available() if cuda is None else cuda
    kind = _STATE.kind
    dense = "flex_attention, causal block mask" if kind == "flex" else f"SDPA, {kind} kernel only"
    flex_varlen = kind != "math" and cuda and A._flex_importable()
    varlen = ("flex_attention, document mask from cu_seqlens" if flex_varlen
              else f"one SDPA call per document, {'math' if kind == 'flex' else kind} kernel")
    return {"attention": label(kind), "kind": kind, "requested": _STATE.requested, "why": _STATE.why,
            "flash_attn_func": dense, "flash_attn_varlen_func": varlen, "torch": torch.__version__}


# ---- FA3's two entry points ---------------------------------------------------------------------------------


def _refuse(tensors: dict[str, Any], window_size: tuple[int, int], attention_chunk: int, softcap: float) -> None:
    """FA3 features the shim does not compute: refused by name rather than silently ignored."""
    given = {name: "a tensor" for name, t in tensors.items() if t is not None}
    if tuple(window_size) != (-1, -1):
        given["window_size"] = tuple(window_size)
    if attention_chunk:
        given["attention_chunk"] = attention_chunk
    if softcap:
        given["softcap"] = softcap
    if given:
        args = ", ".join(f"{k}={v}" for k, v in given.items())
        raise NotImplementedError(f"golfprof's {MODULE} shim does not support {args} "
                                  "(FlashAttention-3 is not installed here)")


def _check_heads(q: Tensor, k: Tensor, v: Tensor, head_dim: int) -> None:
    h, hk = q.size(head_dim), k.size(head_dim)
    if v.size(head_dim) != hk or hk == 0 or h % hk:
        raise ValueError(f"number of heads in key/value ({hk}, {v.size(head_dim)}) must divide the number of "
                         f"heads in query ({h})")


def flash_attn_func(q: Tensor, k: Tensor, v: Tensor, softmax_scale: float | None = None, causal: bool = False,
                    qv: Tensor | None = None, q_descale: Tensor | None = None, k_descale: Tensor | None = None,
                    v_descale: Tensor | None = None, window_size: tuple[int, int] = (-1, -1),
                    attention_chunk: int = 0, softcap: float = 0.0, num_splits: int = 1, pack_gqa: bool | None = None,
                    deterministic: bool = False, sm_margin: int = 0,
                    return_attn_probs: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """FA3's `flash_attn_func`: q (B, Tq, H, D), k and v (B, Tk, Hk, D), Hk dividing H; out (B, Tq, H, D).

    With `return_attn_probs` it returns (out, softmax_lse), the lse (B, H, Tq) in fp32 as FA3 gives it.
    """
    _refuse({"qv": qv, "q_descale": q_descale, "k_descale": k_descale, "v_descale": v_descale}, window_size,
            attention_chunk, softcap)
    _check_heads(q, k, v, 2)
    scale = q.size(-1) ** -0.5 if softmax_scale is None else softmax_scale
    qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    out = attend(qh, kh, vh, scale, causal, _STATE.kind).transpose(1, 2).contiguous()
    if return_attn_probs:
        return out, softmax_lse(qh, kh, scale, causal)
    return out


def flash_attn_varlen_func(q: Tensor, k: Tensor, v: Tensor, cu_seqlens_q: Tensor, cu_seqlens_k: Tensor,
                           max_seqlen_q: int, max_seqlen_k: int, seqused_q: Tensor | None = None,
                           seqused_k: Tensor | None = None, softmax_scale: float | None = None, causal: bool = False,
                           qv: Tensor | None = None, q_descale: Tensor | None = None,
                           k_descale: Tensor | None = None, v_descale: Tensor | None = None,
                           window_size: tuple[int, int] = (-1, -1), attention_chunk: int = 0, softcap: float = 0.0,
                           num_splits: int = 1, pack_gqa: bool | None = None, deterministic: bool = False,
                           sm_margin: int = 0, return_attn_probs: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """FA3's `flash_attn_varlen_func`: packed q (total_q, H, D), k and v (total_k, Hk, D); document j is rows
    cu_seqlens[j]:cu_seqlens[j+1] (repeated trailing entries are empty documents); out (total_q, H, D).

    Rows outside every document get zeros. `max_seqlen_*` only size FA3's launch and are not needed here.
    With `return_attn_probs` it returns (out, softmax_lse), the lse (H, total_q) in fp32.
    """
    _refuse({"seqused_q": seqused_q, "seqused_k": seqused_k, "qv": qv, "q_descale": q_descale,
             "k_descale": k_descale, "v_descale": v_descale}, window_size, attention_chunk, softcap)
    _check_heads(q, k, v, 1)
    scale = q.size(-1) ** -0.5 if softmax_scale is None else softmax_scale
    path = varlen_path(_STATE.kind, q, k, v)
    out = varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, scale, causal, _STATE.kind, path)
    if return_attn_probs:
        return out, varlen_softmax_lse(q, k, cu_seqlens_q, cu_seqlens_k, scale, causal)
    return out


# ---- the kernels behind them ------------------------------------------------------------------------------


def attend(q: Tensor, k: Tensor, v: Tensor, scale: float, causal: bool, kind: str) -> Tensor:
    """Attention over (B, H, T, D) through one kernel; causal aligned to the bottom right, as FA3 aligns it."""
    import torch

    tq, tk = q.size(2), k.size(2)
    if causal and tq > tk:  # the first tq - tk queries see no key (FA3: zeros); the rest are an equal-length case
        seen = _kernel(q[:, :, tq - tk:], k, v, scale, causal, kind)
        return torch.cat([seen.new_zeros(seen.shape[:2] + (tq - tk, seen.size(-1))), seen], dim=2)
    return _kernel(q, k, v, scale, causal, kind)


def _kernel(q: Tensor, k: Tensor, v: Tensor, scale: float, causal: bool, kind: str) -> Tensor:
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    gqa = q.size(1) != k.size(1)
    tq, tk = q.size(2), k.size(2)
    if kind == "flex":
        q, k, v = A._low_precision(q, k, v)
        mask = None
        if causal:
            mask = A.causal_block_mask(tq, q.device) if tq == tk else _offset_causal_mask(tq, tk, q.device)
        return A._flex_fn(q.device.type)(q, k, v, block_mask=mask, scale=scale, enable_gqa=gqa)
    with sdpa_kernel([getattr(SDPBackend, A._SDPA_BACKEND_NAMES[kind])]):
        if not causal or tq == tk:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale, enable_gqa=gqa)
        from torch.nn.attention.bias import causal_lower_right  # tq < tk here: every query sees a key

        return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(tq, tk), scale=scale,
                                              enable_gqa=gqa)


def _offset_causal_mask(tq: int, tk: int, device: Any) -> Any:
    from torch.nn.attention.flex_attention import create_block_mask

    def mask(b: Tensor, h: Tensor, qi: Tensor, ki: Tensor) -> Tensor:
        return qi + (tk - tq) >= ki

    return create_block_mask(mask, B=None, H=None, Q_LEN=tq, KV_LEN=tk, device=device)


def varlen_path(kind: str, q: Tensor, k: Tensor, v: Tensor) -> str:
    """`flex` (a document mask) where flex runs: any kind but math, on a CUDA device, or on the CPU when no
    gradient is asked for (flex has no CPU backward); else `per_document`."""
    import torch

    if kind == "math" or not A._flex_importable():
        return "per_document"
    if q.device.type == "cuda":
        return "flex"
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    return "per_document" if needs_grad else "flex"


def varlen_attention(q: Tensor, k: Tensor, v: Tensor, cu_q: Tensor, cu_k: Tensor, scale: float, causal: bool,
                     kind: str, path: str) -> Tensor:
    """Packed attention, document by document; `path` as `varlen_path` picks it (tests force each)."""
    if path == "flex":
        return _flex_varlen(q, k, v, cu_q, cu_k, scale, causal)
    if path != "per_document":
        raise ValueError(f"varlen path {path!r}: valid: flex, per_document")
    return _per_document(q, k, v, cu_q, cu_k, scale, causal, "math" if kind == "flex" else kind)


def _doc_of(cu: Tensor, n: int, outside: int) -> tuple[Tensor, Tensor]:
    """(document index, end row of that document) for each of n packed rows; `outside` for rows in none."""
    import torch

    cu = cu.to(torch.int64)
    pos = torch.arange(n, device=cu.device)
    doc = torch.searchsorted(cu, pos, right=True) - 1
    inside = (pos >= cu[0]) & (pos < cu[-1])
    doc = torch.where(inside, doc.clamp(0, cu.numel() - 2), outside)
    end = torch.where(inside, cu[(doc + 1).clamp(0, cu.numel() - 1)], 0)
    return doc, end


def _flex_varlen(q: Tensor, k: Tensor, v: Tensor, cu_q: Tensor, cu_k: Tensor, scale: float, causal: bool) -> Tensor:
    import torch
    from torch.nn.attention.flex_attention import create_block_mask

    tq, tk = q.size(0), k.size(0)
    doc_q, end_q = _doc_of(cu_q.to(q.device), tq, -1)
    doc_k, end_k = _doc_of(cu_k.to(q.device), tk, -2)

    def mask(b: Tensor, h: Tensor, qi: Tensor, ki: Tensor) -> Tensor:
        same = doc_q[qi] == doc_k[ki]
        return same & (qi - end_q[qi] >= ki - end_k[ki]) if causal else same

    # compiled creation on a GPU: eager creation materialises every (q, k) pair of the packed batch
    compile_mask = q.device.type == "cuda" and not torch.compiler.is_compiling()
    block_mask = create_block_mask(mask, B=None, H=None, Q_LEN=tq, KV_LEN=tk, device=q.device,
                                   _compile=compile_mask)
    qh, kh, vh = A._low_precision(*(t.transpose(0, 1).unsqueeze(0) for t in (q, k, v)))
    out = A._flex_fn(q.device.type)(qh, kh, vh, block_mask=block_mask, scale=scale,
                                    enable_gqa=q.size(1) != k.size(1))
    return out.squeeze(0).transpose(0, 1)


def _per_document(q: Tensor, k: Tensor, v: Tensor, cu_q: Tensor, cu_k: Tensor, scale: float, causal: bool,
                  kind: str) -> Tensor:
    """Exact: one attention call per document (bounds read on the host), zeros for rows outside documents."""
    import torch

    bq, bk = cu_q.tolist(), cu_k.tolist()
    if len(bq) != len(bk):
        raise ValueError(f"cu_seqlens_q has {len(bq)} entries and cu_seqlens_k {len(bk)}: one per document + 1")
    parts = [q.new_zeros((bq[0], q.size(1), v.size(-1)))]
    for (q0, q1), (k0, k1) in zip(zip(bq, bq[1:]), zip(bk, bk[1:])):
        if q1 <= q0:
            continue
        if k1 <= k0:
            parts.append(q.new_zeros((q1 - q0, q.size(1), v.size(-1))))
            continue
        one = [t.transpose(0, 1).unsqueeze(0) for t in (q[q0:q1], k[k0:k1], v[k0:k1])]
        parts.append(attend(*one, scale, causal, kind).squeeze(0).transpose(0, 1))
    parts.append(q.new_zeros((q.size(0) - bq[-1], q.size(1), v.size(-1))))
    return torch.cat(parts)


def softmax_lse(q: Tensor, k: Tensor, scale: float, causal: bool) -> Tensor:
    """log-sum-exp of each query's scaled scores, (B, H, Tq) fp32, -inf where a query sees no key (FA3's lse)."""
    import torch

    g = q.size(1) // k.size(1)
    s = (q.float() @ k.float().repeat_interleave(g, dim=1).transpose(-1, -2)) * scale
    if causal:
        tq, tk = q.size(2), k.size(2)
        qi = torch.arange(tq, device=q.device)[:, None]
        ki = torch.arange(tk, device=q.device)[None, :]
        s = s.masked_fill(qi + (tk - tq) < ki, float("-inf"))
    return torch.logsumexp(s, dim=-1)


def varlen_softmax_lse(q: Tensor, k: Tensor, cu_q: Tensor, cu_k: Tensor, scale: float, causal: bool) -> Tensor:
    """`softmax_lse` per document of a packed batch, (H, total_q) fp32; -inf for rows outside documents."""
    import torch

    lse = torch.full((q.size(1), q.size(0)), float("-inf"), device=q.device)
    bq, bk = cu_q.tolist(), cu_k.tolist()
    for (q0, q1), (k0, k1) in zip(zip(bq, bq[1:]), zip(bk, bk[1:])):
        if q1 > q0 and k1 > k0:
            one = [t.transpose(0, 1).unsqueeze(0) for t in (q[q0:q1], k[k0:k1])]
            lse[:, q0:q1] = softmax_lse(*one, scale, causal)[0]
    return lse


# ---- installing it as flash_attn_interface ----------------------------------------------------------------

_MODULE_SOURCE = '''"""flash_attn_interface as golfprof provides it where FlashAttention-3 is not installed: {label}.

Not FlashAttention-3. Written by golfprof.model.fa3_shim.install; the functions are golfprof's, over PyTorch.
"""
from golfprof.model import fa3_shim as _shim

_shim.configure({kind!r}, {requested!r}, {why!r})
flash_attn_func = _shim.flash_attn_func
flash_attn_varlen_func = _shim.flash_attn_varlen_func
GOLFPROF_SHIM = _shim.label()
'''


def resolve_kind(kind: str) -> tuple[str, str]:
    """(kind that will run, why it differs from the request or ''). `auto`: bench attention's fastest kernel that
    agrees with fp32 math on this GPU; math on a CPU. A kernel that cannot run on this GPU is refused."""
    import torch

    if kind != AUTO and kind not in KINDS:
        raise ConfigError(f"--attention-shim {kind!r}: valid: {AUTO}, {', '.join(KINDS)}")
    cuda = torch.cuda.is_available()
    if not cuda:
        if kind in (AUTO, "math", "flash"):  # SDPA has a CPU flash kernel; auto takes the reference
            why = "" if kind != AUTO else "no CUDA device: the reference kernel"
            if kind == AUTO:
                warnings.warn(f"{MODULE} shim on the CPU: SDPA's math kernel", GolfprofWarning, stacklevel=3)
            return ("math" if kind == AUTO else kind), why
        why = f"no CUDA device, and {kind} {'has no CPU kernel' if kind == 'cudnn' else 'has no CPU backward'}"
        warnings.warn(f"{MODULE} shim kind {kind} unavailable ({why}); using math", GolfprofWarning, stacklevel=3)
        return "math", why
    if kind == AUTO:
        from golfprof.bench.attention_choice import fastest_agreeing_kind

        return fastest_agreeing_kind()
    if kind != "math":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GolfprofWarning)
            ran, why = A.resolve_backend(kind, "cuda")
        if ran != kind:
            raise ConfigError(f"--attention-shim {kind} cannot run on this GPU ({why}); try another kind or {AUTO}")
    return kind, ""


def install(kind: str = AUTO, folder: str | Path | None = None) -> str:
    """Make `import flash_attn_interface` give this shim here and in every process started from here.

    Writes a `flash_attn_interface.py` into `folder` (default: a temporary folder removed when this process
    exits), puts it first on sys.path and on PYTHONPATH, pins the kernel, exports ENV (the `describe()` JSON)
    and returns the label of what runs (`fa3-shim/<kind>`). Check for a real FA3 (`attention.fa3_installed`)
    before calling this: afterwards the name resolves to the shim.
    """
    resolved, why = resolve_kind(kind)
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="golfprof-fa3-shim-"))
        atexit.register(shutil.rmtree, folder, True)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"FA3 shim folder {folder} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    source = _MODULE_SOURCE.format(label=label(resolved), kind=resolved, requested=kind, why=why)
    (folder / f"{MODULE}.py").write_text(source)
    entry = str(folder.resolve())
    if entry not in sys.path:
        sys.path.insert(0, entry)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != entry]
    os.environ["PYTHONPATH"] = os.pathsep.join([entry, *paths])
    sys.modules.pop(MODULE, None)  # a shim imported before this call must not keep its old kernel
    importlib.invalidate_caches()
    configure(resolved, kind, why)
    os.environ[ENV] = json.dumps(describe())
    return label(resolved)
