"""Who owns a run's folders and processes: one live run per folder, and nothing outlives its job.

A run folder holds a lock file (``RunDir.lock``) locked with ``flock``: the launcher claims it exclusively
(refusing a folder a live run holds), then shares it with its children (torchrun inherits the descriptor, each
rank takes its own shared lock), so the lock is held until the last process of the job is gone, and the kernel
releases it however they die. Spawned processes get a parent-death signal, so ``kill -9`` of golfprof takes
torchrun and the ranks with it; temporary launch folders are removed on every exit, and those of dead owners
(a ``kill -9``) by the next launch. Linux-only parts (prctl) are skipped elsewhere. Torch-free.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from golfprof.errors import ConfigError
from golfprof.profiler.rundir import RunDir

LAUNCH_PREFIX = "golfprof-launch-"
LAUNCH_OWNER = "owner.lock"
LAUNCHER_PID = "GOLFPROF_LAUNCHER_PID"  # set for spawned ranks: the golfprof process their job belongs to
_PR_SET_PDEATHSIG = 1
_UNLOCKED_GRACE_S = 60  # a launch folder without its lock file may be one being made right now


class FolderInUse(ConfigError):
    """Another live golfprof run holds the folder (its lock file is locked)."""


class Lock:
    """An open, flocked lock file; closing it (or the process ending) releases the lock."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path = fd, path

    def share(self) -> None:
        """Exclusive -> shared, so the job's own processes can join; lost to a racing claimer: refuse."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise FolderInUse(f"{self.path.parent}: claimed by another golfprof run a moment ago") from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()


def _owner(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid else "another process"


def claim(path: Path, wait_s: float = 0.0) -> Lock:
    """The exclusive lock of ``path`` (created if missing), waiting up to ``wait_s`` for its holders to exit:
    processes of a just-killed run die within moments of their parent, and release the lock as they do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise FolderInUse(f"{path.parent} is in use by a live golfprof run ({_owner(path)}); "
                                  "wait for it to finish or stop it first") from None
            time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return Lock(fd, path)


def hold_shared(path: Path) -> Lock:
    """A rank's share of its run folder's lock: granted beside its launcher's, refused beside another claimer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FolderInUse(f"{path.parent} is in use by another golfprof run ({_owner(path)})") from None
    return Lock(fd, path)


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Ask the kernel to send ``sig`` when this process's parent exits (Linux), and go now if it already has.

    Used as torchrun's ``preexec_fn`` and at the start of each rank: without it a ``kill -9`` of golfprof
    re-parents torchrun and its ranks to init, still training and writing into the run folder.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), sig)


def guard_rank() -> None:
    """At a spawned rank's start: die with its parent (torchrun, or golfprof for a lone worker), and exit now
    when that parent or the golfprof that launched the job (``LAUNCHER_PID``) is already gone (it died while
    this rank's Python was starting, before the parent-death signal was armed)."""
    die_with_parent(signal.SIGKILL)
    launcher = os.environ.get(LAUNCHER_PID, "")
    if not launcher.isdigit():
        return  # launched by the user's own torchrun or srun: theirs to manage
    parent = os.getppid()
    if parent != int(launcher) and "torch.distributed.run" not in _cmdline(parent):
        os.kill(os.getpid(), signal.SIGKILL)  # re-parented: torchrun is gone
    try:
        os.kill(int(launcher), 0)
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGKILL)
    except PermissionError:
        pass


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    """pid's children, their children, ... (Linux /proc; empty elsewhere), read before killing pid."""
    found, todo = [], [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            try:
                kids = [int(c) for c in task.read_text().split()]
            except (OSError, ValueError):
                continue
            found += kids
            todo += kids
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL pid and everything under it: Ctrl-C answers at once, and no rank is left to a torchrun that
    was killed before the rank armed its parent-death signal."""
    for p in [pid, *descendants(pid)]:
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def remove_stale_launch_folders(root: Path | None = None) -> list[Path]:
    """Launch folders whose owner is gone (their lock is free): what a ``kill -9`` of golfprof left behind."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for folder in root.glob(f"{LAUNCH_PREFIX}*"):
        try:
            if not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            lock = folder / LAUNCH_OWNER
            if lock.exists():
                fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live launch
                finally:
                    os.close(fd)
            elif time.time() - folder.stat().st_mtime < _UNLOCKED_GRACE_S:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def launch_folder() -> Iterator[tuple[Path, Lock]]:
    """A temporary folder for one launch (spec file, torchrun's logs), locked while its job lives and removed
    on every exit path Python sees; one left by a ``kill -9`` is removed by the next launch."""
    remove_stale_launch_folders()
    folder = Path(tempfile.mkdtemp(prefix=LAUNCH_PREFIX))
    lock = claim(folder / LAUNCH_OWNER)
    try:
        yield folder, lock
    finally:
        lock.close()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def owned(run_dir: str | Path | None) -> Iterator[Lock | None]:
    """The launcher's hold on a run folder for one job: claimed exclusively (a live holder is refused), then
    shared with the job's processes, and released when the job is over."""
    if run_dir is None:
        yield None
        return
    lock = claim(RunDir(run_dir).lock)
    try:
        lock.share()
        yield lock
    finally:
        lock.close()
