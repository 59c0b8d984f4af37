"""Process launch: in-process for one rank, torchrun for several, or join a group someone else launched."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import torch
import torch.distributed as dist

from golfprof.errors import Interrupted
from golfprof.model.config import ConfigError
from golfprof.model.train import DistInfo
from golfprof.profiler.rundir import RunDir

from .ownership import LAUNCHER_PID, die_with_parent, kill_tree, launch_folder, owned
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
    ok = False
    try:
        result = execute(spec, info)
        ok = True
        return result
    finally:
        shutdown_process_group(ok)


def shutdown_process_group(ok: bool = True) -> None:
    """Tear the process group down without the exit-time aborts gloo is prone to: free any
    collective handle still held (a work object destroyed after the group, or at interpreter exit,
    can SIGABRT the rank) and, when every rank got here normally, wait for all before closing the
    connections a slower peer's last collective may still be using."""
    if not dist.is_initialized():
        return
    import gc

    gc.collect()
    if ok:
        nccl = dist.get_backend() == "nccl"
        dist.barrier(device_ids=[torch.cuda.current_device()] if nccl else None)
    dist.destroy_process_group()


def spawn(spec: RunSpec, nproc: int) -> tuple[int, str | None]:
    """Run the spec in fresh process(es): torchrun for several ranks, a plain worker for one.

    A dying rank ends the job; returns the exit code and that rank's one-line error.
    """
    what = f"{spec.run.variant} run" + (f": {spec.run_dir} is incomplete (no summary.json)" if spec.run_dir else "")
    with launch_folder() as (tmp, launch_lock), owned(spec.run_dir) as owner:
        keep = tuple(lock.fd for lock in (launch_lock, owner) if lock is not None)
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(dataclasses.asdict(spec)))
        worker = ["-m", "golfprof.ablations.worker", str(spec_file)]
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        env[LAUNCHER_PID] = str(os.getpid())
        if nproc == 1:
            proc = _run_child([sys.executable, *worker], env, keep, what)
            error = _error_line(proc.stderr)
            if proc.returncode != 0:
                _keep_logs(spec.run_dir, stderr=proc.stderr)
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                   "--log-dir", str(Path(tmp) / "logs"), "--redirects", "2", *worker]
            proc = _run_child(cmd, env, keep, what)
            error = first_rank_error(Path(tmp) / "logs")
            if proc.returncode != 0:
                _keep_logs(spec.run_dir, log_dir=Path(tmp) / "logs")
        if proc.returncode != 0 and error is None:
            error = torchrun_root_cause(proc.stderr) or _last_line(proc.stderr) or f"exit code {proc.returncode}"
            if proc.returncode < 0:
                error = f"killed by signal {-proc.returncode} (out of memory?)"
        return proc.returncode, (error if proc.returncode != 0 else None)


def _run_child(cmd: list[str], env: dict[str, str], keep: tuple[int, ...] = (),
               what: str = "run") -> subprocess.CompletedProcess:
    """`subprocess.run` that takes its child down with it. SIGTERM (`timeout`, a scheduler, a CI
    cancel) or SIGHUP kills only golfprof by default, which would orphan torchrun and its ranks, still
    holding the GPUs; here they stop the child first (torchrun passes the SIGTERM on to its ranks),
    then golfprof exits with 128 + the signal. Ctrl-C stops the child at once (its ranks follow through
    their parent-death signal) and raises Interrupted naming ``what``. A ``kill -9`` of golfprof, which
    no handler sees, reaches the child as its parent-death signal. ``keep``: descriptors the child
    inherits (the run folder's lock, shared with the job, so the lock lives as long as the job)."""
    parent = os.getpid()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, pass_fds=keep,
                            preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent))
    main = threading.current_thread() is threading.main_thread()

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {s: signal.signal(s, on_term) for s in (signal.SIGTERM, signal.SIGHUP)} if main else {}
    try:
        _, err = proc.communicate()
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):  # answer at once: torchrun and its ranks, nothing to save
            kill_tree(proc.pid)
        else:
            proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if isinstance(e, KeyboardInterrupt):
            raise Interrupted(f"Ctrl-C stopped the {what}") from None
        if isinstance(e, SystemExit):
            print(f"golfprof: terminated by signal {e.code - 128}; stopped the run's processes first", file=sys.stderr)
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return subprocess.CompletedProcess(cmd, proc.returncode, None, err)


def _keep_logs(run_dir: str | None, log_dir: Path | None = None, stderr: str | None = None) -> None:
    """A failed job's output into RUN_DIR/launch_logs: torchrun's per-rank stdout/stderr folder, or
    a lone worker's stderr. The launch folder is temporary, and the terminal shows one line."""
    if not run_dir:
        return
    rd = RunDir(run_dir)
    dest = rd.launch_logs
    dest.mkdir(parents=True, exist_ok=True)
    if log_dir is not None and log_dir.is_dir():
        import shutil

        shutil.copytree(log_dir, dest, dirs_exist_ok=True)
    if stderr:
        rd.launch_stderr.write_text(stderr)


def torchrun_root_cause(text: str) -> str | None:
    """One line from the "Root Cause" block torchrun prints when a rank dies without golfprof's
    own error line (killed by a signal, e.g. the kernel's OOM killer, or a crash in native code):
    'rank 1 died: exit code -9 (SIGKILL); Signal 9 (SIGKILL) received by PID 16682'."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Root Cause")), None)
    if start is None:
        return None
    fields: dict[str, str] = {}
    for ln in lines[start + 1:]:
        if ln.startswith("====="):
            break
        key, sep, value = ln.strip().partition(":")
        if sep and key.strip() in ("rank", "exitcode", "traceback") and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    if "rank" not in fields:
        return None
    rank = fields["rank"].split(" ")[0]
    exitcode = fields.get("exitcode", "")  # "-9 (pid: 16682)  (SIGKILL)"
    number, signame = re.match(r"-?\d+", exitcode), re.search(r"\((SIG\w+)\)", exitcode)
    code = (number.group(0) if number else "?") + (f" ({signame.group(1)})" if signame else "")
    why = fields.get("traceback", "")
    return f"rank {rank} died: exit code {code}" + (f"; {why}" if why and why != "<N/A>" else "")


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
