"""GPU work per kernel name (exact, or grouped by a name pattern), per profiled step.

Communication kernels are left out: `diff` reports collectives on their own, by op and size.
"""

from __future__ import annotations

import re

import pandas as pd

from . import attribute, events, metrics
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


def kernel_table(trace: Trace, grouped: bool = True, *, steps: pd.DataFrame | None = None,
                 gpu: pd.DataFrame | None = None) -> pd.DataFrame:
    """Columns kernel, count_per_step, ms_per_step over the profiled steps (whole trace if none).

    A kernel counts in the step that launched it. ``steps`` (``events.steps``) and ``gpu``
    (``attribute.launched_work``) are derived here unless the caller has them already: ``golfprof
    diff`` passes the ones its rank summary uses, so each trace is walked once.
    """
    ev = trace.events
    st = events.steps(ev) if steps is None else steps
    g = attribute.launched_work(ev) if gpu is None else gpu
    g = g[metrics.kernel_class(g["name"]) != metrics.COMM]
    if not st.empty and len(g):
        g = g[events.step_of(st, attribute.launch_time(g)) >= 0]
    n_steps = max(len(st), 1)
    names = g["name"].astype(str)
    # name_pattern runs three regexes: once per distinct name, not once per launch
    key = names.map({n: name_pattern(n) for n in names.unique()}) if grouped else names
    out = (pd.DataFrame({"kernel": key.to_numpy(), "dur": g["dur"].to_numpy(float)})
           .groupby("kernel", sort=True)["dur"].agg(["count", "sum"]))
    return pd.DataFrame({"kernel": out.index.to_numpy(), "count_per_step": out["count"].to_numpy() / n_steps,
                         "ms_per_step": out["sum"].to_numpy() / 1e3 / n_steps}).reset_index(drop=True)
