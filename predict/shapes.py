"""FLOPs and bytes of a trace's kernels from the shapes of the ops that launched them (record_shapes).

torch.profiler(record_shapes=True) writes ``Input Dims`` and ``Input type`` on every ``cpu_op``; a kernel
belongs to the innermost shaped op on the thread of its launch, and an op's FLOPs and bytes are shared among
its kernels in proportion to their durations (so each has the op's achieved rates). GEMMs (mm, addmm, bmm,
matmul, linear) count 2·M·K·N FLOPs from their leading operands (a compiled graph calls ``mm(a, b, out=c)``: the
result is recorded as a third input, counted once) and their operands' and result's bytes; attention (scaled-dot-product
kernels; aten's ops, also the inner ``aten::_cudnn_attention_forward/backward`` that launch cuDNN's kernels)
4·B·H·S·S_k·D forward, 2.5× that backward, and q, k, v and the output's bytes; any other shaped
op is an elementwise or reduction pass: its inputs read once, an output as large as its largest input
written, one FLOP per element. A trace without shapes gives an empty result.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ELEM = {"c10::BFloat16": 2, "c10::Half": 2, "float": 4, "double": 8, "long int": 8, "int": 4, "bool": 1,
        "unsigned char": 1, "signed char": 1, "short int": 2, "c10::Float8_e4m3fn": 1, "c10::Float8_e5m2": 1}
GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm")
LAUNCHES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx")


def _tensors(ev: dict[str, Any]) -> list[tuple[list[int], int]]:
    args = ev.get("args", {})
    dims, types = args.get("Input Dims", []), args.get("Input type", [])
    out = []
    for i, d in enumerate(dims):
        if isinstance(d, list) and d and all(isinstance(x, int) for x in d):
            out.append((d, ELEM.get(types[i] if i < len(types) else "", 2)))
    return out


def _numel(d: list[int]) -> int:
    return math.prod(d)


def op_work(name: str, tensors: list[tuple[list[int], int]]) -> tuple[float, float]:
    """(FLOPs, bytes) of one op from its input tensors' dims and element sizes."""
    if not tensors:
        return 0.0, 0.0
    nbytes = sum(_numel(d) * e for d, e in tensors)
    mats = [(d, e) for d, e in tensors if len(d) >= 2]
    if name in GEMM_OPS and len(mats) >= 2:
        # the operands lead: addmm/baddbmm's 2-D bias comes first; a compiled graph's `out=` result comes last
        first = 1 if name in ("aten::addmm", "aten::baddbmm") and len(mats) >= 3 else 0
        (a, ea), (b, _) = mats[first], mats[first + 1]
        k = a[-1]
        n = b[-2] if name == "aten::linear" else b[-1]  # linear's weight is [N, K]
        rows = _numel(a[:-1])
        has_out = len(mats) > first + 2 and _numel(mats[-1][0]) == rows * n
        return 2.0 * rows * k * n, nbytes + (0 if has_out else rows * n * ea)
    # aten's attention ops only: a Triton kernel's own cpu_op may carry "attention" in its fused name
    if name.startswith("aten::") and "attention" in name and len(mats) >= 3 and len(mats[0][0]) == 4:
        (q, e), (kk, _) = mats[0], mats[1]
        bsz, heads, s, dim = q
        f = 4.0 * bsz * heads * s * kk[2] * dim
        return (2.5 * f if "backward" in name else f), nbytes + _numel(q) * e
    big = max(tensors, key=lambda t: _numel(t[0]))
    return float(_numel(big[0])), float(nbytes + _numel(big[0]) * big[1])


def _read(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    return json.loads(text).get("traceEvents", [])


def kernel_work(path: Path) -> pd.DataFrame:
    """Per kernel correlation id: flops and bytes from its launching op's shapes (empty without shapes); read
    once per trace file and version (predictions for several targets read one trace)."""
    st = path.stat()
    return _kernel_work(str(path), st.st_mtime_ns, st.st_size).copy()


@functools.lru_cache(maxsize=8)
def _kernel_work(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    evs = _read(Path(path))
    ops = [e for e in evs if e.get("cat") == "cpu_op" and e.get("ph") == "X" and "Input Dims" in e.get("args", {})]
    if not ops:
        return pd.DataFrame(columns=["flops", "bytes"], index=pd.Index([], name="correlation"))
    kdur = {e["args"]["correlation"]: float(e.get("dur", 0)) for e in evs
            if e.get("cat") == "kernel" and "correlation" in e.get("args", {})}
    by_tid: dict[Any, list[int]] = {}
    for i, o in enumerate(ops):
        by_tid.setdefault(o.get("tid"), []).append(i)
    spans = {tid: _Spans(ops, idx) for tid, idx in by_tid.items()}
    owner: dict[int, list[int]] = {}  # op index -> kernel correlations
    for e in evs:
        if e.get("name") not in LAUNCHES or "correlation" not in e.get("args", {}):
            continue
        c = e["args"]["correlation"]
        if c not in kdur:
            continue
        sp = spans.get(e.get("tid"))
        inner = sp.innermost(float(e["ts"])) if sp is not None else -1
        if inner >= 0:
            owner.setdefault(inner, []).append(c)
    rows = {}
    for i, corrs in owner.items():
        f, b = op_work(str(ops[i]["name"]), _tensors(ops[i]))
        total = sum(kdur[c] for c in corrs) or float(len(corrs))
        for c in corrs:
            share = (kdur[c] or 1.0) / total
            rows[c] = (f * share, b * share)
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["flops", "bytes"])
    out.index.name = "correlation"
    return out


class _Spans:
    """One thread's op ranges, sorted by start: the innermost range holding t is the latest-started one that
    has not ended (ranges on one thread nest)."""

    def __init__(self, ops: list[dict[str, Any]], idx: list[int]) -> None:
        order = sorted(idx, key=lambda i: float(ops[i]["ts"]))
        self.idx = np.array(order, np.int64)
        self.ts = np.array([float(ops[i]["ts"]) for i in order])
        self.end = self.ts + np.array([float(ops[i].get("dur", 0)) for i in order])

    def innermost(self, t: float, look_back: int = 256) -> int:
        i = int(np.searchsorted(self.ts, t, side="right")) - 1
        for j in range(i, max(i - look_back, -1), -1):
            if self.end[j] > t:
                return int(self.idx[j])
        return -1


def aligned(work: pd.DataFrame, corrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """flops and bytes per kernel of ``corrs`` (NaN where its op's shapes are unknown)."""
    w = work.reindex(pd.Index(corrs))
    return w["flops"].to_numpy(float), w["bytes"].to_numpy(float)
