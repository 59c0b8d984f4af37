"""Process launch: in-process for one rank, torchrun for several, or join a group someone else launched."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist

from golfprof.model.config import ConfigError
from golfprof.model.train import DistInfo

from .run import RunSpec, execute

SLURM_TO_TORCH = {"SLURM_PROCID": "RANK", "SLURM_NTASKS": "WORLD_SIZE", "SLURM_LOCALID": "LOCAL_RANK"}


def launched_env(environ: dict[str, str] | None = None) -> DistInfo | None:
    """The rank/world of a process started by torchrun (or srun with MASTER_ADDR set), else None."""
    env = dict(os.environ if environ is None else environ)
    if "RANK" not in env and "SLURM_PROCID" in env and "MASTER_ADDR" in env:
        for src, dst in SLURM_TO_TORCH.items():
            if src in env:
                env.setdefault(dst, env[src])
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    world = int(env["WORLD_SIZE"])
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    return DistInfo(world_size=world, rank=int(env["RANK"]), local_rank=int(env.get("LOCAL_RANK", 0)),
                    backend=backend if world > 1 else "none")


def export_slurm_env() -> None:
    """torch.distributed's env:// init reads RANK/WORLD_SIZE/LOCAL_RANK; srun sets SLURM_* only."""
    if "RANK" not in os.environ and "SLURM_PROCID" in os.environ:
        for src, dst in SLURM_TO_TORCH.items():
            if src in os.environ:
                os.environ.setdefault(dst, os.environ[src])
        os.environ.setdefault("MASTER_PORT", "29500")


def check_nproc(nproc: int, device: str) -> None:
    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    gpus = torch.cuda.device_count()
    use_cuda = device == "cuda" or (device == "auto" and gpus > 0)
    if use_cuda and nproc > gpus:
        raise ConfigError(f"--nproc {nproc} is larger than the {gpus} GPU(s) present")


def run_joined(spec: RunSpec, info: DistInfo) -> dict:
    """Run as one rank of an already-launched job (torchrun, srun, or our own spawn)."""
    if info.distributed and not dist.is_initialized():
        if info.backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(info.backend)
    try:
        return execute(spec, info)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn(spec: RunSpec, nproc: int) -> tuple[int, str | None]:
    """Run the spec in fresh process(es): torchrun for several ranks, a plain worker for one.

    A dying rank ends the job; returns the exit code and that rank's one-line error.
    """
    with tempfile.TemporaryDirectory(prefix="golfprof-launch-") as tmp:
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(dataclasses.asdict(spec)))
        worker = ["-m", "golfprof.ablations.worker", str(spec_file)]
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        if nproc == 1:
            proc = subprocess.run([sys.executable, *worker], env=env, stderr=subprocess.PIPE, text=True)
            error = _error_line(proc.stderr)
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                   "--log-dir", str(Path(tmp) / "logs"), "--redirects", "2", *worker]
            proc = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True)
            error = first_rank_error(Path(tmp) / "logs")
        if proc.returncode != 0 and error is None:
            error = _last_line(proc.stderr) or f"exit code {proc.returncode}"
            if proc.returncode < 0:
                error = f"killed by signal {-proc.returncode} (out of memory?)"
        return proc.returncode, (error if proc.returncode != 0 else None)


def _error_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("golfprof-error: "):
            return line.removeprefix("golfprof-error: ")
    return None


def _last_line(text: str) -> str | None:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else None


def first_rank_error(log_dir: Path) -> str | None:
    """The `golfprof-error:` line a failing worker wrote to its stderr log."""
    for path in sorted(log_dir.rglob("stderr.log")):
        error = _error_line(path.read_text(errors="replace"))
        if error is not None:
            return error
    return None
