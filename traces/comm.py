"""NCCL collectives: what each communication kernel is, how much of it is exposed, and rank skew.

A collective finishes on all ranks together, so when the same collective takes far longer on one
rank, that rank launched it early and waited for a slower peer: its extra time is waiting, and
the peer with the shortest kernel is the one everybody waited for.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from . import metrics

_KERNEL_RE = re.compile(r"nccl(?:Dev)?Kernel_([A-Za-z0-9]+)([A-Za-z0-9_]*)")
_ALGOS = ("COLLNET_DIRECT", "COLLNET_CHAIN", "NVLS_TREE", "COLLNET", "NVLS", "RING", "TREE", "PAT")
_PROTOS = ("LL128", "SIMPLE", "LL")
_DTYPES = {  # spelling in kernel names (old and new NCCL) and in record_param_comms args -> short name
    "int8_t": "i8", "i8": "i8", "Char": "i8",
    "uint8_t": "u8", "u8": "u8", "Byte": "u8", "Bool": "u8",
    "int32_t": "i32", "i32": "i32", "Int": "i32",
    "uint32_t": "u32", "u32": "u32",
    "int64_t": "i64", "i64": "i64", "Long": "i64",
    "uint64_t": "u64", "u64": "u64",
    "half": "f16", "f16": "f16", "Half": "f16",
    "float": "f32", "f32": "f32", "Float": "f32",
    "double": "f64", "f64": "f64", "Double": "f64",
    "__nv_bfloat16": "bf16", "bf16": "bf16", "BFloat16": "bf16",
    "__nv_fp8_e4m3": "f8e4m3", "f8e4m3": "f8e4m3", "fp8_e4m3": "f8e4m3", "Float8_e4m3fn": "f8e4m3",
    "__nv_fp8_e5m2": "f8e5m2", "f8e5m2": "f8e5m2", "fp8_e5m2": "f8e5m2", "Float8_e5m2": "f8e5m2",
}
_DTYPE_BYTES = {"i8": 1, "u8": 1, "i32": 4, "u32": 4, "i64": 8, "u64": 8, "f16": 2, "f32": 4, "f64": 8,
                "bf16": 2, "f8e4m3": 1, "f8e5m2": 1}
_DTYPE_RE = re.compile(
    r"(?:^|_)(" + "|".join(sorted((re.escape(k) for k in _DTYPES if k[0].islower() or k[0] == "_"),
                                  key=len, reverse=True)) + r")(?=_|$)"
)
_OPS = {"allreduce": "all_reduce", "allgather": "all_gather", "reducescatter": "reduce_scatter",
        "broadcast": "broadcast", "reduce": "reduce", "sendrecv": "send_recv", "send": "send",
        "recv": "recv", "alltoall": "all_to_all", "alltoallv": "all_to_all", "gather": "gather",
        "scatter": "scatter", "barrier": "barrier", "generic": "generic"}


def canonical_op(name: str) -> str:
    """'_reduce_scatter_base', 'ReduceScatter', 'reduce_scatter_tensor_coalesced' -> 'reduce_scatter'."""
    s = name.lower().strip("_")
    for suffix in ("_coalesced", "_base", "_into_tensor", "_tensor", "_single"):
        s = s.replace(suffix, "")
    key = s.replace("_", "")
    return _OPS.get(key, s or "unknown")


def parse_kernel_name(name: str) -> dict[str, str | None]:
    """op / dtype / algo / proto from an NCCL kernel name (either naming scheme), None when absent."""
    m = _KERNEL_RE.search(name)
    if m is None:
        return {"op": None, "dtype": None, "algo": None, "proto": None}
    rest = m.group(2)
    algo = next((a for a in _ALGOS if re.search(rf"(?:^|_){a}(?=_|$)", rest)), None)
    proto = next((p for p in _PROTOS if re.search(rf"(?:^|_){p}(?=_|$)", rest)), None)
    d = _DTYPE_RE.search(rest)
    return {"op": canonical_op(m.group(1)), "dtype": _DTYPES[d.group(1)] if d else None,
            "algo": algo, "proto": proto}


def _collective(parsed: dict[str, str | None], coll: object, dtype: object, n_in: object,
                n_out: object) -> tuple[str, str | None, float]:
    """(op, dtype, message bytes) of one communication kernel: its args where recorded, else its name's."""
    op = parsed["op"]
    if isinstance(coll, str) and op in (None, "send_recv", "generic"):
        op = canonical_op(coll)
    dt = (_DTYPES.get(dtype) if isinstance(dtype, str) else None) or parsed["dtype"]
    ne = [v for v in (n_in, n_out) if isinstance(v, (int, float)) and v == v]
    nbytes = float(max(ne)) * _DTYPE_BYTES[dt] if ne and dt in _DTYPE_BYTES else np.nan
    return op or "unknown", dt, nbytes


def _seq(v: object) -> int | None:
    """A collective's sequence number in its process group, when the trace records one."""
    return int(v) if isinstance(v, (int, float)) and v == v and not isinstance(v, bool) else None


def comm_kernels(gpu: pd.DataFrame, classes: np.ndarray, comm_args: pd.DataFrame,
                 param_row: np.ndarray) -> pd.DataFrame:
    """The communication rows of ``gpu`` with op, dtype, algo, proto, message bytes, sequence number and group.

    ``param_row`` gives, per gpu row, the record_param_comms event row whose args describe it
    (-1 if none); args on the kernel itself win.
    """
    sel = classes == metrics.COMM
    k = gpu.loc[sel]
    if k.empty:
        return k.assign(op=[], dtype=[], algo=[], proto=[], bytes=[], seq=[], pg=[])
    parsed = {n: parse_kernel_name(n) for n in k["name"].astype(str).unique()}
    names = k["name"].astype(str).to_numpy()
    rows = k.index.to_numpy()
    src = np.where(np.isin(rows, comm_args.index.to_numpy()), rows, param_row[sel])
    a = comm_args.reindex(src)
    described = [_collective(parsed[n], *args) for n, *args in
                 zip(names, a["collective"], a["dtype"], a["in_nelems"], a["out_nelems"])]
    return k.assign(
        op=[d[0] for d in described],
        dtype=[d[1] for d in described],
        algo=[parsed[n]["algo"] for n in names],
        proto=[parsed[n]["proto"] for n in names],
        bytes=np.asarray([d[2] for d in described], float),
        seq=[_seq(v) for v in a["seq"]],  # the collective's sequence number in its process group, when recorded
        pg=[v if isinstance(v, str) else None for v in a["pg_name"]],
    )


def exposed_length(ts: np.ndarray, end: np.ndarray, compute: tuple[np.ndarray, np.ndarray]) -> float:
    """Time in the union of [ts, end) during which no compute kernel runs."""
    merged = metrics.merge(ts, end)
    return metrics.length(merged) - metrics.intersection(merged, compute)


def collectives(comm: pd.DataFrame, compute: tuple[np.ndarray, np.ndarray], n_steps: int) -> pd.DataFrame:
    """Per (op, dtype, algo, proto): count and time per step, typical size, exposed time per step."""
    cols = ["op", "dtype", "algo", "proto"]
    if comm.empty:
        return pd.DataFrame(columns=[*cols, "count_per_step", "ms_per_step", "median_us", "median_bytes",
                                     "exposed_ms_per_step"])
    out = []
    for key, g in comm.fillna({"dtype": "", "algo": "", "proto": ""}).groupby(cols, sort=True):
        out.append(
            dict(zip(cols, key))
            | {
                "count_per_step": len(g) / n_steps,
                "ms_per_step": g["dur"].sum() / 1e3 / n_steps,
                "median_us": float(g["dur"].median()),
                "median_bytes": float(g["bytes"].median()) if g["bytes"].notna().any() else None,
                "exposed_ms_per_step": exposed_length(g["ts"].to_numpy(), g["end"].to_numpy(), compute)
                / 1e3 / n_steps,
            }
        )
    return pd.DataFrame(out).sort_values("ms_per_step", ascending=False, kind="stable").reset_index(drop=True)


def sequence(comm: pd.DataFrame, step_no: np.ndarray, base_us: float = 0.0) -> pd.DataFrame:
    """Each collective with what matches it across ranks: its NCCL sequence number and process group
    (``nccl_seq``, ``pg``; -1 and '' where the trace lacks them), and (profiler step, op, n-th of that op
    in the step). ``start``, ``end`` and ``launch`` are on the unix clock (``base_us``: the trace's
    baseTimeNanoseconds in µs); ``queue_*`` columns of ``comm`` (``lateness.queue_before``) are kept."""
    seq = comm["seq"] if "seq" in comm else pd.Series(None, index=comm.index, dtype=object)
    launch = comm["launch_ts"].to_numpy() if "launch_ts" in comm else np.full(len(comm), np.nan)
    pg = comm["pg"] if "pg" in comm else pd.Series(None, index=comm.index, dtype=object)
    k = pd.DataFrame({"step": step_no, "op": comm["op"].to_numpy(), "ts": comm["ts"].to_numpy(),
                      "dur": comm["dur"].to_numpy(), "end": comm["end"].to_numpy() + base_us,
                      "start": comm["ts"].to_numpy() + base_us, "launch": launch + base_us,
                      "nccl_seq": [int(v) if v is not None and v == v else -1 for v in seq],
                      "pg": [v if isinstance(v, str) else "" for v in pg]})
    k = k.sort_values("ts", kind="stable")
    k["seq"] = k.groupby(["step", "op"]).cumcount()
    extra = [c for c in ("queue_busy", "queue_phase", "queue_kernel") if c in comm]
    for c in extra:
        k[c] = comm[c].to_numpy()
    return k[["step", "op", "seq", "nccl_seq", "pg", "dur", "end", "start", "launch", *extra]]


def match_collectives(seqs: dict[int, pd.DataFrame], values: tuple[str, ...] = ("dur", "end")
                      ) -> tuple[pd.DataFrame, ...]:
    """The same collective on every rank: one frame per column of ``values`` (default duration and end), with
    a row per collective seen on two or more ranks and a column per rank, then info (its op and step).

    When every rank's trace records NCCL sequence numbers the collective is its (process group, sequence
    number); otherwise it is the n-th of its op in a profiler step, and steps where ranks ran different
    numbers of an op are left out: their n-th ones need not match.
    """
    parts = [s.assign(rank=r) for r, s in seqs.items() if not s.empty]
    if len(parts) < 2:
        return tuple(pd.DataFrame() for _ in range(len(values) + 1))
    allk = pd.concat(parts, ignore_index=True)
    if (allk["nccl_seq"] >= 0).all():
        key = ["pg", "nccl_seq"]
    else:
        key = ["step", "op", "seq"]
        counts = allk.groupby(["step", "op", "rank"]).size().unstack("rank")
        same = counts.index[counts.nunique(axis=1) == 1]
        allk = allk.set_index(["step", "op"]).loc[lambda d: d.index.isin(same)].reset_index()
    wide = [allk.pivot_table(index=key, columns="rank", values=v, aggfunc="first", dropna=False) for v in values]
    dur = allk.pivot_table(index=key, columns="rank", values="dur", aggfunc="first")
    keep = dur.index[dur.notna().sum(axis=1) >= 2]
    info = allk.sort_values("rank", kind="stable").groupby(key)[["op", "step"]].first()
    return (*(w.reindex(index=keep, columns=dur.columns) for w in wide), info.loc[keep])


def rank_skew(seqs: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Per (rank, op): wait per step in collectives matched across ranks, and the peer it waited for.

    Waiting = this rank's kernel time minus the shortest kernel time of the same collective
    (``match_collectives``).
    """
    cols = ["rank", "op", "waits_for", "wait_ms_per_step", "comm_ms_per_step", "matched"]
    wide, info = match_collectives(seqs, ("dur",))
    if wide.empty:
        return pd.DataFrame(columns=cols)
    fastest = wide.idxmin(axis=1)
    wait = wide.sub(wide.min(axis=1), axis=0)
    n_steps = max(info["step"].nunique(), 1)
    out = []
    for op, w in wait.groupby(info["op"]):
        f = fastest.loc[w.index]
        d = wide.loc[w.index]
        for r in w.columns:
            wr = w[r].dropna()
            if wr.empty:
                continue
            by_peer = wr.groupby(f.loc[wr.index]).sum().drop(r, errors="ignore")
            peer = int(by_peer.idxmax()) if not by_peer.empty and by_peer.max() > 0 else None
            out.append({"rank": int(r), "op": op, "waits_for": peer,
                        "wait_ms_per_step": float(wr.sum()) / 1e3 / n_steps,
                        "comm_ms_per_step": float(d[r].dropna().sum()) / 1e3 / n_steps,
                        "matched": int(len(wr))})
    return pd.DataFrame(out, columns=cols).sort_values(["op", "rank"], kind="stable").reset_index(drop=True)
