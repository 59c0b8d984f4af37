"""Which rows of a trace are steps, GPU work, launches and CPU ranges: one place for Kineto's categories."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# GPU work: kernels (CUDA, HIP, Triton alike) and copies/fills the copy engines run
GPU_WORK_CATS = ("kernel", "gpu_memcpy", "gpu_memset")
# CPU calls that carry the correlation id of what they put on the GPU: cudaLaunchKernel,
# cudaMemcpyAsync, cudaGraphLaunch, hipLaunchKernel (cuda_runtime) and cuLaunchKernel (Triton,
# torch.compile: cuda_driver)
LAUNCH_CATS = ("cuda_runtime", "cuda_driver")
# CPU ranges a phase regex may pick: record_function is user_annotation, older traces use cpu_op
RANGE_CATS = ("user_annotation", "cpu_op", "python_function")
STEP_RE = re.compile(r"^ProfilerStep#(\d+)")


def name_mask(col: pd.Series, pattern: re.Pattern[str]) -> np.ndarray:
    """Regex over a categorical column, evaluated once per distinct name."""
    cats = col.cat.categories
    hit = np.fromiter((pattern.search(c) is not None for c in cats), bool, len(cats))
    codes = col.cat.codes.to_numpy()
    return hit[codes] if len(codes) else np.zeros(0, bool)


def cat_mask(events: pd.DataFrame, cats: tuple[str, ...]) -> np.ndarray:
    return events["cat"].isin(cats).to_numpy()


def thread_key(events: pd.DataFrame) -> np.ndarray:
    """(pid, tid) as one integer: tids repeat across processes and GPU streams."""
    n = max(len(events["tid"].cat.categories), 1)
    return events["pid"].cat.codes.to_numpy().astype(np.int64) * n + events["tid"].cat.codes.to_numpy()


def steps(events: pd.DataFrame) -> pd.DataFrame:
    """ProfilerStep#N ranges on the CPU, sorted; columns step, ts, end."""
    m = name_mask(events["name"], STEP_RE) & cat_mask(events, RANGE_CATS)
    s = events.loc[m, ["name", "ts", "dur"]]
    out = pd.DataFrame(
        {
            "step": [int(STEP_RE.match(n).group(1)) for n in s["name"].astype(str)],  # type: ignore[union-attr]
            "ts": s["ts"].to_numpy(),
            "end": (s["ts"] + s["dur"]).to_numpy(),
        }
    )
    return out.drop_duplicates("step").sort_values("ts", kind="stable").reset_index(drop=True)


def step_of(steps_df: pd.DataFrame, t: np.ndarray) -> np.ndarray:
    """Index into ``steps_df`` of the step whose CPU range holds each time, -1 outside every step."""
    if steps_df.empty:
        return np.full(len(t), -1, np.int64)
    starts = steps_df["ts"].to_numpy()
    ends = steps_df["end"].to_numpy()
    i = np.searchsorted(starts, t, side="right") - 1
    ok = (i >= 0) & (t < ends[np.clip(i, 0, None)])
    return np.where(ok, i, -1)


def gpu_work(events: pd.DataFrame) -> pd.DataFrame:
    """Kernels, memcpys and memsets with their end time; keeps the event row as index."""
    g = events.loc[cat_mask(events, GPU_WORK_CATS), ["cat", "name", "ts", "dur", "stream", "correlation"]]
    return g.assign(end=g["ts"] + g["dur"])


def launches(events: pd.DataFrame) -> pd.DataFrame:
    """Runtime/driver calls with a correlation id, with their thread."""
    m = cat_mask(events, LAUNCH_CATS) & (events["correlation"].to_numpy() >= 0)
    return events.loc[m, ["name", "ts", "dur", "correlation"]].assign(thread=thread_key(events)[m])


def cpu_ranges(events: pd.DataFrame, pattern: re.Pattern[str]) -> pd.DataFrame:
    """CPU ranges whose name matches ``pattern``; columns name (str), thread, ts, end."""
    m = cat_mask(events, RANGE_CATS) & name_mask(events["name"], pattern)
    r = events.loc[m, ["name", "ts", "dur"]]
    return pd.DataFrame(
        {
            "name": r["name"].astype(str).to_numpy(),
            "thread": thread_key(events)[m],
            "ts": r["ts"].to_numpy(),
            "end": (r["ts"] + r["dur"]).to_numpy(),
        }
    )
