"""Ablation matrices: variants × repeats, interleaved, resumable, each run a fresh process group.

The matrix folder is keyed by the command's work (configs, world size, data), so re-running the
same command finds it, skips complete runs (those with a summary.json) and retries the rest. matrix.json
keeps the matrix's fingerprint (world size, preset, steps, launch settings, each variant's toggles): a
command with other settings is refused for that folder (``--matrix-dir``), naming both, rather than
pooling runs that are not comparable. The
state file is rewritten atomically after every run, so killing the matrix loses at most the run
in flight; an interrupted run's folder is kept under an `.incomplete-N` name, never overwritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import signal
from pathlib import Path
from typing import Any, Callable

from golfprof.errors import ConfigError, Interrupted, Terminated
from golfprof.profiler.rundir import MatrixDir

from .launch import spawn, terminated_by
from .ownership import claim
from .run import RunSpec

PREVIOUS_RUN_WAIT_S = 30.0  # how long a re-run waits for a killed run's processes to release its folder


def matrix_key(specs: dict[str, RunSpec], nproc: int) -> str:
    work = {name: {"config": s.config, "data": s.train_data, "device": s.device, "warmup": s.warmup_steps,
                   "profile": s.profile} for name, s in specs.items()}
    blob = json.dumps({"specs": work, "nproc": nproc}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def run_name(variant: str, repeat: int) -> str:
    return MatrixDir.run_name(variant, repeat)


def interleaved(variants: list[str], repeats: int) -> list[tuple[str, int]]:
    """A B A B ...: slow drift (clocks, thermals, neighbours) hits every variant alike."""
    return [(v, k) for k in range(repeats) for v in variants]


def load_state(matrix_dir: Path) -> dict[str, Any]:
    return MatrixDir(matrix_dir).read_state()


# Settings every run of a matrix shares (its fingerprint's "common" part) and those each variant has its own of.
_LAUNCH_SETTINGS = ("device", "train_data", "val_data", "sp_model", "warmup_steps", "profile", "marks", "timers",
                    "record_shapes", "with_stack", "profile_memory", "evaluate")
_VARIANT_TRAIN = ("tokens_per_step", "micro_batch_seqs")  # a tokens-per-step sweep varies these per variant


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def fingerprint(specs: dict[str, RunSpec], nproc: int) -> dict[str, Any]:
    """What makes a matrix's runs comparable: the world size, the preset's model and training settings, the
    launch settings that change what is measured, and each variant's toggles and batch."""
    import torch

    first = next(iter(specs.values()))
    train = {k: v for k, v in first.config["train"].items() if k not in _VARIANT_TRAIN}
    common = {"nproc": nproc, "preset": first.config["preset"], **_flat({"model": first.config["model"]}),
              **_flat({"train": train}), **{k: getattr(first, k) for k in _LAUNCH_SETTINGS}}
    if common["device"] == "auto":  # what it means here: a CPU matrix resumed with --device cpu is the same matrix
        common["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    variants = {name: {**_flat({"toggles": s.config["toggles"]}),
                       **{f"train.{k}": s.config["train"][k] for k in _VARIANT_TRAIN}} for name, s in specs.items()}
    return {"common": common, "variants": variants}


def _legacy_fingerprint(mdir: MatrixDir, state: dict[str, Any]) -> dict[str, Any] | None:
    """A matrix written before fingerprints: its first readable run's recorded settings (a subset)."""
    for name, info in sorted(state.get("runs", {}).items()):
        rd = mdir.run_named(name)
        try:
            config, env = rd.read_config(), rd.read_env()
        except (OSError, ValueError):
            continue
        train = {k: v for k, v in config.get("train", {}).items() if k not in _VARIANT_TRAIN}
        common = {"nproc": env.get("world_size"), "preset": config.get("preset"),
                  **_flat({"model": config.get("model", {})}), **_flat({"train": train})}
        variant = {**_flat({"toggles": config.get("toggles", {})}),
                   **{f"train.{k}": config.get("train", {}).get(k) for k in _VARIANT_TRAIN}}
        return {"common": common, "variants": {info["variant"]: variant}}
    return None


_FLAGS = {"train_data": "--data", "profile": "--profile-steps"}


def _label(key: str) -> str:
    """A fingerprint key as the option that sets it (``train.steps`` -> ``--steps``); model fields keep theirs."""
    if key.startswith("model."):
        return key
    name = key.split(".", 1)[-1]
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(_label(k), old[k], new[k]) for k in old if k in new and old[k] != new[k]]


def check_fingerprint(matrix_dir: Path, specs: dict[str, RunSpec], nproc: int) -> dict[str, Any]:
    """The matrix folder's fingerprint merged with this command's; refused (before anything is written) when
    the folder holds runs made with other settings, naming both. Variants new to the matrix are added."""
    mdir = MatrixDir(matrix_dir)
    state = mdir.read_state() if mdir.is_matrix() else {"runs": {}}
    new = fingerprint(specs, nproc)
    old = state.get("fingerprint") or _legacy_fingerprint(mdir, state)
    if old is None:
        return new
    diffs = _differences(old["common"], new["common"])
    for name in set(old["variants"]) & set(new["variants"]):
        diffs += [(f"{name}: {k}", a, b) for k, a, b in _differences(old["variants"][name], new["variants"][name])]
    if diffs:
        shown = diffs[:6]
        was = ", ".join(f"{k} {a!r}" for k, a, _ in shown)
        now = ", ".join(f"{k} {b!r}" for k, _, b in shown)
        more = f" (and {len(diffs) - len(shown)} more)" if len(diffs) > len(shown) else ""
        raise ConfigError(f"matrix {matrix_dir} holds runs made with {was}{more}; this command asks for {now}: "
                          "its runs would not be comparable. Use another --matrix-dir, or the matrix's settings")
    return {"common": old["common"], "variants": {**old["variants"], **new["variants"]}}


def run_matrix(specs: dict[str, RunSpec], repeats: int, nproc: int, matrix_dir: Path, baseline: str,
               on_event: Callable[[str, str, str | None], None] = lambda name, status, error: None,
               launcher: Callable[[RunSpec, int], tuple[int, str | None]] = spawn) -> dict[str, Any]:
    """Run (or resume) the matrix; refused before anything is written when the folder's settings differ."""
    fp = check_fingerprint(matrix_dir, specs, nproc)
    matrix_dir.mkdir(parents=True, exist_ok=True)
    mdir = MatrixDir(matrix_dir)
    writer = claim(mdir.lock)  # one live golfprof per matrix: a second one is refused, a dead one's lock is free
    state = mdir.read_state()
    state.update(variants=list(specs), repeats=max(repeats, state.get("repeats", 0)), nproc=nproc,
                 baseline=baseline, fingerprint=fp)
    mdir.write_state(state)
    for variant, k in interleaved(list(specs), repeats):
        _one_run(specs[variant], variant, k, nproc, mdir, state, on_event, launcher)
    writer.close()
    return state


def _done(state: dict[str, Any]) -> int:
    return sum(1 for r in state["runs"].values() if r["status"] == "ok")


def _one_run(spec: RunSpec, variant: str, k: int, nproc: int, mdir: MatrixDir, state: dict[str, Any],
             on_event: Callable[[str, str, str | None], None],
             launcher: Callable[[RunSpec, int], tuple[int, str | None]]) -> None:
    """One run of the matrix: skipped when complete, else (its earlier attempt set aside) launched and recorded."""
    name = run_name(variant, k)
    run_dir = mdir.run(variant, k)
    # A killed matrix's ranks die with it, within moments: wait for them, never touch a folder they hold.
    previous = claim(run_dir.lock, wait_s=PREVIOUS_RUN_WAIT_S) if run_dir.path.exists() else None
    if run_dir.is_complete():
        if previous is not None:
            previous.close()
        state["runs"][name] = {"variant": variant, "repeat": k, "status": "ok"}
        on_event(name, "skipped (complete)", None)
        return
    if run_dir.path.exists():
        run_dir.set_aside()
    if previous is not None:
        previous.close()
    spec = dataclasses.replace(spec, run_dir=str(run_dir.path), quiet=True,
                               extra={**spec.extra, "matrix": mdir.path.name, "repeat": k})
    try:
        code, error = launcher(spec, nproc)
    except Interrupted as e:
        resumed = type(e)(f"{e}; matrix {mdir.path}: re-run the same command to resume ({_done(state)} complete "
                          "run(s) are kept, this one starts again)")
        resumed.exit_code = e.exit_code
        raise resumed from None
    ok = code == 0 and run_dir.is_complete()
    state["runs"][name] = {"variant": variant, "repeat": k, "status": "ok" if ok else "failed",
                           **({} if ok else {"error": error or f"exit code {code}", "returncode": code})}
    mdir.write_state(state)
    on_event(name, "ok" if ok else "failed", None if ok else state["runs"][name]["error"])
    signum = terminated_by()  # set by spawn when SIGTERM/SIGHUP arrived as this run completed
    if signum is not None:  # stop here, resumable
        raise Terminated(f"{signal.Signals(signum).name} arrived as {name} completed; matrix {mdir.path}: re-run "
                         f"the same command to resume ({_done(state)} complete run(s) are kept)", signum)
