"""Process launch: in-process for one rank, torchrun for several, or join a group someone else launched."""

from __future__ import annotations

import dataclasses
import datetime as dt
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

from golfprof.errors import Interrupted, Terminated
from golfprof.model.config import ConfigError
from golfprof.model.train import DistInfo
from golfprof.profiler.rundir import RunDir

from . import watchdog
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
        watchdog.stage("joining the process group")
        # a peer that never answers ends the collective; a watching launcher ends the job first (stall_timeout)
        dist.init_process_group(info.backend, timeout=collective_timeout(spec))
    watchdog.stage("setting up")
    ok = False
    try:
        result = execute(spec, info)
        ok = True
        return result
    finally:
        shutdown_process_group(ok)


def collective_timeout(spec: RunSpec) -> dt.timedelta:
    """How long a collective waits for its peers: a minute past the launcher's stall timeout, so that under
    golfprof's own launch the watch names the stuck rank, and under the user's torchrun or srun no job hangs."""
    return dt.timedelta(seconds=spec.stall_timeout + 60)


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


def spawn(spec: RunSpec, nproc: int, entry: str = "golfprof.ablations.worker",
          name: str | None = None) -> tuple[int, str | None]:
    """Run the spec in fresh process(es): torchrun for several ranks, a plain worker for one. ``entry``: the
    ranks' module (`golfprof profile` passes its own, with a ScriptSpec), ``name``: the run's name in messages.

    A dying rank ends the job, and so does a rank that makes no progress for ``spec.stall_timeout`` seconds
    (watched through the ranks' heartbeats); returns the exit code and the one-line error. SIGTERM after the run
    completed is a finished run; before, it names the incomplete folder (exit 143).
    """
    what = _what(spec, name)
    with launch_folder() as (tmp, launch_lock), owned(spec.run_dir) as owner:
        keep = tuple(lock.fd for lock in (launch_lock, owner) if lock is not None)
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(dataclasses.asdict(spec)))
        worker = ["-m", entry, str(spec_file)]
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        env[LAUNCHER_PID] = str(os.getpid())
        env[watchdog.HEARTBEAT_DIR] = str(Path(tmp) / "heartbeat")
        watch = watchdog.Watch(Path(tmp) / "heartbeat", nproc, spec.stall_timeout)
        logs = Path(tmp) / "logs"
        cmd = [sys.executable, *worker] if nproc == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "--log-dir", str(logs), "--redirects", "2", *worker]
        try:
            proc, stuck = _run_child(cmd, env, keep, what, watch)
        except SystemExit as e:
            signum = int(e.code) - 128
            if spec.run_dir and RunDir(spec.run_dir).is_complete():
                _TERMINATED.append(signum)  # a matrix stops after this run; a lone run is simply done
                return 0, None  # the summary was written: the run is complete, whatever stopped its teardown
            raise Terminated(f"{signal.Signals(signum).name} stopped the {what}", signum) from None
        error = _error_line(proc.stderr) if nproc == 1 else first_rank_error(logs)
        if proc.returncode != 0 or stuck:
            _keep_logs(spec.run_dir, log_dir=logs if nproc > 1 else None, stderr=proc.stderr)
        if stuck:
            return 1, stuck
        if proc.returncode != 0 and error is None:
            error = torchrun_root_cause(proc.stderr) or _last_line(proc.stderr) or f"exit code {proc.returncode}"
            if proc.returncode < 0:  # torchrun (or the lone worker) itself, killed from outside
                who = "torchrun" if nproc > 1 else "the run's process"
                error = f"{who} was killed by signal {_signal_name(-proc.returncode)}"
        code = 1 if proc.returncode < 0 else proc.returncode  # a signal is named in the error; the job failed
        return code, (error if code != 0 else None)


_TERMINATED: list[int] = []  # signals that arrived as a spawned run completed: nothing more may start


def terminated_by() -> int | None:
    """The SIGTERM/SIGHUP that arrived while a spawned run was finishing (it completed), if one did."""
    return _TERMINATED[-1] if _TERMINATED else None


def _signal_name(number: int) -> str:
    try:
        return f"{number} ({signal.Signals(number).name})"
    except ValueError:
        return str(number)


def _what(spec: RunSpec, name: str | None) -> str:
    """The run as messages name it: what was stopped, and which folder it leaves incomplete."""
    return f"{name or spec.run.variant} run" + (f": {spec.run_dir} is incomplete (no summary.json)" if spec.run_dir
                                                else "")


def _run_child(cmd: list[str], env: dict[str, str], keep: tuple[int, ...] = (), what: str = "run",
               watch: watchdog.Watch | None = None) -> tuple[subprocess.CompletedProcess, str | None]:
    """`subprocess.run` that takes its child down with it, and ends it when ``watch`` finds a stuck rank
    (returned as the second value, the child killed). SIGTERM (`timeout`, a scheduler, a CI cancel) or SIGHUP
    kills only golfprof by default, which would orphan torchrun and its ranks, still holding the GPUs; here
    they stop the child first (torchrun passes the SIGTERM on to its ranks), then raise SystemExit(128 + the
    signal). Ctrl-C stops the child at once (its ranks follow through their parent-death signal) and raises
    Interrupted naming ``what``. A ``kill -9`` of golfprof, which no handler sees, reaches the child as its
    parent-death signal. ``keep``: descriptors the child inherits (the run folder's lock, shared with the job,
    so the lock lives as long as the job)."""
    parent = os.getpid()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, pass_fds=keep,
                            preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent))
    main = threading.current_thread() is threading.main_thread()

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {s: signal.signal(s, on_term) for s in (signal.SIGTERM, signal.SIGHUP)} if main else {}
    try:
        err, stuck = _wait(proc, watch)
        if stuck is not None:
            kill_tree(proc.pid)  # SIGKILL reaches a stopped rank too
            _, err = proc.communicate()
    except BaseException as e:
        _stop(proc, e)
        if isinstance(e, KeyboardInterrupt):
            raise Interrupted(f"Ctrl-C stopped the {what}") from None
        raise  # SystemExit(128 + signal): the caller words it, naming the run folder
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return subprocess.CompletedProcess(cmd, proc.returncode, None, err or ""), stuck


def _wait(proc: subprocess.Popen, watch: watchdog.Watch | None) -> tuple[str | None, str | None]:
    """The child's stderr once it exits, or (None, the watch's message) as soon as a rank has stalled.
    (communicate() may be retried after its timeout without losing output.)"""
    while True:
        try:
            return proc.communicate(timeout=watchdog.POLL_EVERY_S)[1], None
        except subprocess.TimeoutExpired:
            stuck = watch.stuck() if watch is not None else None
            if stuck is not None:
                return None, stuck


def _stop(proc: subprocess.Popen, why: BaseException) -> None:
    """The child stopped because golfprof is: Ctrl-C at once (torchrun and its ranks, nothing to save), else
    SIGTERM, then SIGKILL after 30 s."""
    if isinstance(why, KeyboardInterrupt):
        kill_tree(proc.pid)
    else:
        proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
