"""The FA3 shim's default kernel: `bench attention`'s fastest row that agrees with fp32 math, on this GPU.

`golfprof bench attention` times every backend at the full preset's attention call (the records' shape:
8 query and 4 KV heads of 64, 2048 tokens, bf16) and checks each against fp32 math; the shim's default is
its `fastest_agreeing` among the kernels the shim offers. Running those rows costs tens of seconds (flex
compiles), so the answer is kept per GPU, torch, CUDA and cuDNN version in golfprof's cache folder
(`$XDG_CACHE_HOME/golfprof`, else `~/.cache/golfprof`), where the rows it was chosen from stay beside it.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from golfprof.errors import GolfprofWarning

ROWS = ("cudnn", "flash", "flex")  # the shim's kinds that bench attention times; math is the reference
PRESET = "full"
REPS, WARMUP = 5, 2
CACHE_FILE = "fa3_shim_default.json"


def cache_path() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "golfprof" / CACHE_FILE


def device_key() -> str:
    """What the choice depends on: the GPU and the library versions that pick its kernels."""
    import torch

    return (f"{torch.cuda.get_device_name()} | torch {torch.__version__} | cuda {torch.version.cuda} | "
            f"cudnn {torch.backends.cudnn.version()}")


def choose(result: dict[str, Any]) -> tuple[str, str]:
    """(kind, why) from a bench attention result: its fastest agreeing row, math when none agrees."""
    rows = [r for r in result["rows"] if r["backend"] in ROWS and r.get("agrees")]
    if not rows:
        why = "; ".join(f"{r['backend']}: {r.get('skipped') or 'outside bf16 tolerance'}" for r in result["rows"])
        return "math", f"no kernel agreed with fp32 math ({why})"
    best = min(rows, key=lambda r: r["ms_fwd_bwd"])
    return best["backend"], (f"fastest agreeing in bench attention: {best['ms_fwd_bwd']:.3f} ms forward+backward "
                             f"at the {PRESET} preset's shape")


def fastest_agreeing_kind() -> tuple[str, str]:
    """The cached choice for this GPU, or a fresh bench attention of the shim's kernels (then cached)."""
    path, key = cache_path(), device_key()
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if isinstance(cached.get(key), dict) and cached[key].get("kind") in ROWS + ("math",):
        return cached[key]["kind"], cached[key]["why"] + f" (cached in {path})"
    from golfprof.bench.attention import bench_attention

    result = bench_attention(PRESET, "cuda", reps=REPS, warmup=WARMUP, rows=ROWS, command="golfprof fa3 shim default")
    kind, why = choose(result)
    if kind == "math":
        warnings.warn(f"FA3 shim: {why}; using SDPA's math kernel", GolfprofWarning, stacklevel=2)
    rows = [{k: r.get(k) for k in ("backend", "ms_fwd_bwd", "agrees", "skipped")} for r in result["rows"]]
    cached[key] = {"kind": kind, "why": why, "rows": rows}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cached, indent=2) + "\n")
        tmp.replace(path)
    except OSError as e:  # a read-only home: the choice still holds for this run
        warnings.warn(f"FA3 shim: could not cache its default in {path} ({e})", GolfprofWarning, stacklevel=2)
    return kind, why
