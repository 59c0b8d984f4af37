"""GPU work per kernel name (exact, or grouped by a name pattern), per profiled step.

Communication kernels are left out: `diff` reports collectives on their own, by op and size.
"""

from __future__ import annotations

import re

import pandas as pd

from . import derived, metrics
from .load import Trace

_ARGS = re.compile(r"[(<].*$")
_SUFFIX = re.compile(r"_\d+$")
_DIGITS = re.compile(r"\d+")


def name_pattern(name: str) -> str:
    """Group kernels that differ only in template/call arguments, Triton's numeric suffix or tile sizes.

    `void at::native::elementwise_kernel<128, 2, ...>(...)` -> `at::native::elementwise_kernel`,
    `triton_poi_fused_add_mul_3` -> `triton_poi_fused_add_mul`, `nvjet_hsh_192x192_64x4` -> `nvjet_hsh_#x#_#x#`.
    """
    plain = name.removeprefix("void ").replace("(anonymous namespace)::", "")
    base = _ARGS.sub("", plain).strip() or plain
    return _DIGITS.sub("#", _SUFFIX.sub("", base))


# Attention kernels by backend, matched on the full name (template arguments included: FA3's kernels are
# `cutlass::device_kernel<flash::FlashAttn...>`); first match wins (cuDNN's names hold "flash_fprop").
# tests/model/test_attention.py's profiled compiled steps check these names on a GPU; seen on an H200
# (torch 2.11, cuDNN 9.19): cuDNN's backward also runs cudnn::fusion::compute_dot_do_o_specialized,
# convert_dq_to_32bits and fmha_reduce_head (dK/dV summed over each KV head's query heads), Inductor fuses
# flex's neighbours into its template (`triton_tem_fused__fused_rms_norm_..._flex_attention_...`).
ATTENTION_KERNELS: dict[str, re.Pattern[str]] = {
    "fa3": re.compile(r"flash::FlashAttn\w*"),
    "cudnn": re.compile(r"\w*cudnn\w*sdpa\w*|\w*sdpa\w*_[fb]prop\w*|\w*flash_[fb]prop\w*"
                        r"|cudnn::fusion::\w*(?:dot_do_o|dq|fmha)\w*"),
    "flash": re.compile(r"pytorch_flash::\w+|\bflash_(?:fwd|bwd)\w*"),
    "flex": re.compile(r"\w*flex_attention\w*"),
    "efficient": re.compile(r"fmha_cutlass[FB]\w*|\w*MemEffAttention\w*"),
}
# golfprof's own Triton kernels by name: the Newton-Schulz products and the fused MLP's GEMM tiles are matmuls, the
# fused cross-entropy and the momentum update Triton's (a foreign script's own Triton kernels, named as their
# authors chose, land in "other")
_MATMUL = re.compile(r"gemm|gemv|nvjet|xmma|cutlass|cublas|triton_tem_fused_(?:b?mm|addmm)|_syrk_kernel|_update_kernel"
                     r"|_up_act_kernel|_down_grad_kernel", re.IGNORECASE)
_OWN_TRITON = re.compile(r"_softcap_ce_kernel|_momentum_kernel")
FAMILIES = ("attention", "matmul", "triton", "other")
_ATTENTION_GROUP = "attention/"


def attention_backend(name: str) -> str | None:
    """The attention backend whose kernel this is (flash, cudnn, flex, fa3, efficient), or None."""
    for backend, pattern in ATTENTION_KERNELS.items():
        if pattern.search(name):
            return backend
    return None


def group_name(name: str) -> str:
    """`name_pattern`, attention kernels labelled by backend: `attention/flash: pytorch_flash::flash_fwd_kernel`."""
    pattern = name_pattern(name)
    backend = attention_backend(name)
    if backend is None:
        return pattern
    rx = ATTENTION_KERNELS[backend]
    label = pattern if rx.search(pattern) else rx.search(name).group(0)  # FA3: the class inside device_kernel<>
    return f"{_ATTENTION_GROUP}{backend}: {label}"


def kernel_family(name: str) -> str:
    """One of FAMILIES for a kernel name or group: attention (any backend), matmul (cuBLAS, CUTLASS, Triton mm
    templates, golfprof's Newton–Schulz and fused-MLP kernels), triton (Inductor's fused elementwise/reduction
    kernels, golfprof's fused CE and momentum kernels), other."""
    if name.startswith(_ATTENTION_GROUP) or attention_backend(name):
        return "attention"
    if _MATMUL.search(name):
        return "matmul"
    return "triton" if name.startswith("triton_") or _OWN_TRITON.search(name) else "other"


def family_table(kernels: pd.DataFrame) -> pd.DataFrame:
    """A kernel table summed by `kernel_family`: columns kernel (the family), count_per_step, ms_per_step."""
    fam = kernels["kernel"].astype(str).map(kernel_family)
    out = kernels.groupby(fam.to_numpy(), sort=False)[["count_per_step", "ms_per_step"]].sum()
    out = out.reindex([f for f in FAMILIES if f in out.index])
    return pd.DataFrame({"kernel": out.index.to_numpy(), "count_per_step": out["count_per_step"].to_numpy(float),
                         "ms_per_step": out["ms_per_step"].to_numpy(float)})


def kernel_table(trace: Trace, grouped: bool = True) -> pd.DataFrame:
    """Columns kernel, count_per_step, ms_per_step over the profiled steps (whole trace if none).

    A kernel counts in the step that launched it (``derived``, shared with the rank summary), so work
    queued before the window counts in none.
    """
    w = derived.work(trace)
    g = w.gpu
    g = g[(g["cls"].to_numpy() != metrics.COMM) & w.in_steps]
    names = g["name"].astype(str)
    # name_pattern runs three regexes: once per distinct name, not once per launch
    key = names.map({n: group_name(n) for n in names.unique()}) if grouped else names
    out = (pd.DataFrame({"kernel": key.to_numpy(), "dur": g["dur"].to_numpy(float)})
           .groupby("kernel", sort=True)["dur"].agg(["count", "sum"]))
    return pd.DataFrame({"kernel": out.index.to_numpy(), "count_per_step": out["count"].to_numpy() / w.n_steps,
                         "ms_per_step": out["sum"].to_numpy() / 1e3 / w.n_steps}).reset_index(drop=True)
