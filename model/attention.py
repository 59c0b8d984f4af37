"""Causal GQA attention through one chosen kernel: the `attention` toggle.

`causal_attention` is the one call the model makes. Its backend is fixed when the model is built
(`resolve_backend`), and each backend pins its kernel *inside* the traced function, so the choice
holds under `torch.compile`: SDPA's backend is selected when AOT autograd decomposes
`scaled_dot_product_attention` into one aten op (`_scaled_dot_product_flash_attention`,
`_scaled_dot_product_cudnn_attention`, ...), and it reads the `sdpa_kernel` state that is active
at that moment. A context manager entered around the compiled call is read only when the graph is
first traced; one entered here is part of the graph (Dynamo traces `sdpa_kernel`), so every
recompile sees it too.

Backends (`BACKENDS`): `sdpa` (PyTorch's own pick), `flash` / `cudnn` (SDPA restricted to that
kernel), `flex` (`flex_attention` with a causal block mask, compiled), `fa3` (FlashAttention-3's
`flash_attn_interface.flash_attn_func`, the records' kernel) and `math` (SDPA's reference
implementation: tests and `bench attention` compare every other backend with it).
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import TYPE_CHECKING, Any, Callable

from golfprof.errors import ConfigError, GolfprofWarning
from golfprof.model.device import check_name

if TYPE_CHECKING:
    import torch
    from torch import Tensor

BACKENDS = ("sdpa", "flash", "cudnn", "flex", "fa3")  # the toggle's choices (model/config.py Toggles.attention)
# callable here, not toggle choices: math is the reference; efficient (SDPA's memory-efficient kernel) has no
# GQA kernel, `bench attention` shows that
EXTRA_BACKENDS = ("math", "efficient")
# On another device these fall back to sdpa. flex runs forward on the CPU (eagerly: the tests use that), but
# has no CPU backward, so a CPU run cannot train through it.
CUDA_ONLY = ("flash", "cudnn", "flex", "fa3")
FA3_MODULE = "flash_attn_interface"


def fa3_installed() -> bool:
    """Whether FlashAttention-3's Python interface can be imported (without importing it: no torch, no CUDA)."""
    try:
        return importlib.util.find_spec(FA3_MODULE) is not None
    except (ImportError, ValueError):
        return False


def check_available(name: str, device_kind: str = "auto") -> None:
    """Refuse, before any process starts, a choice that cannot run anywhere on this machine.

    Torch-free, for the CLI's validation (and called again by the trainer). A choice that can run
    only on another device (flash, cudnn, flex on the CPU) is not refused here: `resolve_backend` falls
    back to sdpa with a warning, as the Triton orthogonalizer does. fa3 without its package is
    refused whatever the device, since no fallback would measure what the user asked for.
    """
    if name not in BACKENDS:
        raise ConfigError(f"--attention {name!r}: valid: {', '.join(BACKENDS)}")
    check_name(device_kind)
    if name == "fa3" and not fa3_installed():
        raise ConfigError(f"--attention fa3 needs the {FA3_MODULE} package (FlashAttention-3, built from "
                          "flash-attention's hopper/ folder), which is not importable here; "
                          "--attention flash, cudnn or flex run without it")


_SDPA_BACKEND_NAMES = {"flash": "FLASH_ATTENTION", "cudnn": "CUDNN_ATTENTION", "math": "MATH",
                       "efficient": "EFFICIENT_ATTENTION"}


def _probe(name: str, device: torch.device, heads: tuple[int, int, int], dtype: torch.dtype) -> str:
    """'' when backend `name` runs forward and backward at (heads, kv heads, head dim) in dtype; else why not."""
    import torch

    H, Hkv, D = heads
    g = torch.Generator(device=device).manual_seed(0)
    q = torch.randn(1, H, 128, D, device=device, dtype=dtype, generator=g, requires_grad=True)
    k = torch.randn(1, Hkv, 128, D, device=device, dtype=dtype, generator=g, requires_grad=True)
    v = torch.randn(1, Hkv, 128, D, device=device, dtype=dtype, generator=g, requires_grad=True)
    try:
        y = causal_attention(q, k, v, name)
        y.float().sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    except (RuntimeError, NotImplementedError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"no {name} kernel for {dtype} with {H}/{Hkv} heads of {D}: {first[:160]}"
    return ""


def resolve_backend(name: str, device: torch.device | str, *, heads: tuple[int, int, int] = (8, 4, 64),
                    dtype: torch.dtype | None = None) -> tuple[str, str]:
    """(backend that will run, why it differs from `name` or ''): falls back to sdpa with a GolfprofWarning.

    On a CUDA device a restricted backend is probed once with a small forward+backward at the
    model's head shape and dtype (default bf16), so a kernel that refuses these inputs (no flash for
    fp32, no cuDNN SDPA in this build) falls back here, with the reason, instead of failing mid-run.
    """
    import torch

    check_available(name)
    device = torch.device(device)
    if name == "sdpa":
        return "sdpa", ""
    why = ""
    if name in CUDA_ONLY and device.type != "cuda":
        why = f"the run's device is {device.type}"
    elif name == "flex" and not _flex_importable():  # torch < 2.5
        why = f"torch {torch.__version__} has no torch.nn.attention.flex_attention"
    elif name == "fa3" and device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 9:
        why = f"FlashAttention-3 needs a Hopper GPU (sm90); {torch.cuda.get_device_name(device)} is older"
    elif device.type == "cuda":
        why = _probe(name, device, heads, dtype or torch.bfloat16)
    if why:
        warnings.warn(f"attention={name} unavailable ({why}); using sdpa (PyTorch's pick)",
                      GolfprofWarning, stacklevel=2)
        return "sdpa", why
    return name, ""


def _flex_importable() -> bool:
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


# ---- the kernels ------------------------------------------------------------------------------------

_MASKS: dict[tuple[int, str], Any] = {}


def _causal(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
    return q_idx >= kv_idx


def causal_block_mask(T: int, device: torch.device) -> Any:
    """flex_attention's causal BlockMask for T tokens, built once per (T, device) outside compiled code.

    Built while Dynamo traces (nothing cached yet: `prepare` was not called), the mask becomes part
    of the graph, correct but rebuilt on every call; `prepare` before the first compiled step avoids that.
    """
    import torch
    from torch.nn.attention.flex_attention import create_block_mask

    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # the key a tensor's own device gives inside the model
        device = torch.device("cuda", torch.cuda.current_device())
    key = (T, str(device))
    mask = _MASKS.get(key)
    if mask is None:
        mask = create_block_mask(_causal, B=None, H=None, Q_LEN=T, KV_LEN=T, device=device)
        if not torch.compiler.is_compiling():
            _MASKS[key] = mask
    return mask


_COMPILED_FLEX: list[Callable[..., Tensor]] = []


def _flex_fn(device_type: str) -> Callable[..., Tensor]:
    """flex_attention itself inside compiled code (Dynamo lowers it to the fused Triton kernels); called
    eagerly on a GPU, its compiled form (eager flex materialises every score); eager on the CPU (tests)."""
    import torch
    from torch.nn.attention.flex_attention import flex_attention

    if device_type != "cuda" or torch.compiler.is_compiling():
        return flex_attention
    if not _COMPILED_FLEX:
        _COMPILED_FLEX.append(torch.compile(flex_attention, dynamic=False))
    return _COMPILED_FLEX[0]


def prepare(backend: str, T: int, device: torch.device) -> None:
    """What a backend needs before the first (compiled) call: flex's block mask for this sequence length."""
    if backend == "flex":
        causal_block_mask(T, device)


def _low_precision(*ts: Tensor) -> tuple[Tensor, ...]:
    """Autocast's dtype for kernels autocast does not know (flex, FA3): SDPA gets the same cast from autocast."""
    import torch

    dev = ts[0].device.type
    if torch.is_autocast_enabled(dev):
        dt = torch.get_autocast_dtype(dev)
        return tuple(t.to(dt) for t in ts)
    return ts


def causal_attention(q: Tensor, k: Tensor, v: Tensor, backend: str = "sdpa") -> Tensor:
    """Causal attention, q (B, H, T, D), k and v (B, Hkv, T, D) with H a multiple of Hkv; out (B, H, T, D).

    `backend` must be one `resolve_backend` returned (or `math`): no fallback happens here, so a
    kernel that cannot run raises instead of silently measuring another.
    """
    import torch.nn.functional as F

    gqa = q.size(1) != k.size(1)
    if backend == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    if backend in _SDPA_BACKEND_NAMES:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([getattr(SDPBackend, _SDPA_BACKEND_NAMES[backend])]):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    if backend == "flex":
        q, k, v = _low_precision(q, k, v)
        mask = causal_block_mask(q.size(2), q.device)
        return _flex_fn(q.device.type)(q, k, v, block_mask=mask, enable_gqa=gqa)
    if backend == "fa3":
        from flash_attn_interface import flash_attn_func  # checked by check_available

        q, k, v = _low_precision(q, k, v)
        out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True)
        if isinstance(out, tuple):  # (out, softmax_lse) in the versions that return both
            out = out[0]
        return out.transpose(1, 2)
    raise ValueError(f"unknown attention backend {backend!r}; valid: {', '.join(BACKENDS + EXTRA_BACKENDS)}")
