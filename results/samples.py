"""Per-step samples of a run's metrics, read back from its run directory (or a baseline file)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from golfprof.errors import ConfigError
from golfprof.profiler import names as phases
from golfprof.profiler.rundir import RunDir
from golfprof.profiler.window import Window, timed_steps

T = TypeVar("T")


# metric -> True when higher is better
DIRECTION: dict[str, bool] = {
    "ms_per_step": False, "optimizer_ms": False, "forward_backward_ms": False, "tokens_per_s": True,
    "peak_memory_mb": False, "final_loss": False, "val_loss": False, "val_bits_per_token": False,
    "val_bpb": False,
}
PHASE_PREFIX = "phase:"


def higher_is_better(metric: str) -> bool:
    if metric.startswith(PHASE_PREFIX):
        return False
    if metric not in DIRECTION:
        raise ConfigError(f"unknown metric {metric!r}; valid: {', '.join(DIRECTION)} or phase:<name>")
    return DIRECTION[metric]


@dataclass
class RunSamples:
    source: str
    summary: dict[str, Any]
    fingerprint: dict[str, Any]
    samples: dict[str, np.ndarray] = field(default_factory=dict)

    def values(self, metric: str) -> np.ndarray:
        """Per-step samples where recorded, else the summary's single value."""
        if metric in self.samples:
            return self.samples[metric]
        if metric.startswith(PHASE_PREFIX):
            v = self.summary.get("phase_ms", {}).get(metric.removeprefix(PHASE_PREFIX))
        else:
            v = self.summary.get(metric)
        return np.array([], dtype=float) if v is None else np.array([float(v)])


def fingerprint(summary: dict[str, Any]) -> dict[str, Any]:
    """What must match for two runs to be comparable: work, world size and hardware."""
    return {"preset": summary.get("preset"), "tokens_per_step": summary.get("tokens_per_step"),
            "world_size": summary.get("world_size"), "device": summary.get("device")}


def _read(path: Path, read: Callable[[], T]) -> T:
    """``read()`` of the file at ``path``, its failures worded as the commands' input errors."""
    try:
        return read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as e:  # a path under a file, a folder where a file should be, no permission
        raise ConfigError(f"{path}: cannot read it ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    except ValueError as e:  # valid JSON, but not an object
        raise ConfigError(str(e)) from None


def _read_json(path: Path) -> dict[str, Any]:
    return _read(path, lambda: json.loads(path.read_text()))


def step_samples(run_dir: Path, summary: dict[str, Any]) -> dict[str, np.ndarray]:
    """Rank 0's per-step series over the timed steps (after warm-up, outside the profiler window)."""
    rd = RunDir(run_dir)
    config = _read(rd.config, rd.read_config)
    window = Window(**config["profile_window"]) if config.get("profile_window") else None
    timed = timed_steps(config["train"]["steps"], config["warmup_steps"], window)
    out: dict[str, np.ndarray] = {}
    if rd.steps(0).exists():
        steps = rd.steps_frame(0)
        steps = steps[steps.step.isin(timed)].sort_values("step")
        out["ms_per_step"] = steps.ms.to_numpy(float)
        out["tokens_per_s"] = summary["tokens_per_step"] / (out["ms_per_step"] / 1e3)
    if rd.phases(0).exists():
        table = rd.phases_frame(0)
        table = table[table.step.isin(timed)]
        per = table.groupby(["phase", "step"]).ms.sum().unstack("phase").sort_index()
        for name in per.columns:
            out[PHASE_PREFIX + name] = per[name].dropna().to_numpy(float)
        if phases.OPTIMIZER in per:
            out["optimizer_ms"] = per[phases.OPTIMIZER].dropna().to_numpy(float)
        fb = [c for c in (phases.FORWARD, phases.BACKWARD) if c in per]
        if fb:
            out["forward_backward_ms"] = per[fb].sum(axis=1).to_numpy(float)
    return out


def _baseline(path: Path, data: dict[str, Any]) -> RunSamples:
    """A baseline file's parts, each checked: a hand-edited or truncated file is bad input, not a crash."""
    parts = {k: data.get(k) for k in ("summary", "fingerprint", "samples")}
    bad = [k for k, v in parts.items() if not isinstance(v, dict)]
    if bad:
        raise ConfigError(f"{path}: baseline file without a {bad[0]!r} object; write one with `golfprof baseline save`")
    try:
        samples = {str(k): np.asarray(v, dtype=float).reshape(-1) for k, v in parts["samples"].items()}
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: baseline 'samples' must map metrics to lists of numbers") from None
    return RunSamples(str(path), parts["summary"], parts["fingerprint"], samples)


def load_run(path: Path) -> RunSamples:
    """A run directory, its summary.json, or a baseline file written by `golfprof baseline save`."""
    path = Path(path)
    if path.is_dir():
        rd = RunDir(path)
        summary = _read(rd.summary, rd.read_summary)
        return RunSamples(str(path), summary, fingerprint(summary), step_samples(path, summary))
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a golfprof summary.json, run directory or baseline file "
                          f"(a JSON {type(data).__name__}, not an object)")
    if "golfprof_baseline" in data:
        return _baseline(path, data)
    if "ms_per_step" not in data:
        raise ConfigError(f"{path}: not a golfprof summary.json, run directory or baseline file")
    rd = RunDir(path.parent)
    samples = step_samples(rd.path, data) if rd.config.exists() else {}
    return RunSamples(str(path), data, fingerprint(data), samples)
