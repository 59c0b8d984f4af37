"""What every reliability case checks (issue 28): the exit code, one ``error:`` line, no traceback, no run
folder left by a refused command and nothing already written changed.

``Workspace`` is a folder that already holds a finished-looking run, an output file and a cached data folder;
a case runs there, and its tree (names, kinds, contents) is compared before and after.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

OLD_RUN = "runs/20000101-000000-explicit_banks"


def tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every entry under root: its kind and, for files, a hash of the contents (symlinks: their target)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if rel.startswith(skip):
                continue
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                out[rel] = "link:" + os.readlink(path)
            elif stat.S_ISREG(mode):
                out[rel] = "file:" + hashlib.sha1(path.read_bytes()).hexdigest()
            elif stat.S_ISDIR(mode):
                out[rel] = "dir"
            else:
                out[rel] = f"special:{stat.S_IFMT(mode)}"
    return out


def make_workspace(root: Path) -> Path:
    """A folder with earlier work in it: one run with a summary, an output file, a data folder."""
    run = root / OLD_RUN
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"ms_per_step": 1.0, "preset": "tiny"}))
    (root / "report.html").write_text("<html>an earlier report</html>")
    (root / "data").mkdir()
    return root


@dataclass
class Outcome:
    """One command's result, from the in-process runner or a child process."""

    code: int
    stdout: str
    stderr: str

    @classmethod
    def of(cls, result: Any) -> Outcome:
        if isinstance(result, subprocess.CompletedProcess):
            return cls(result.returncode, result.stdout or "", result.stderr or "")
        return cls(result.exit_code, result.stdout, result.stderr)


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


def assert_one_error(out: Outcome, code: int, message: str) -> str:
    """Exit ``code``, stderr exactly one ``error:`` line holding ``message``, no traceback anywhere."""
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    assert out.code == code, (out.code, out.stdout[-2000:], out.stderr[-2000:])
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert message in lines[0], lines[0]
    return lines[0]


def assert_refused(result: Any, code: int, message: str, root: Path, before: dict[str, str]) -> str:
    """A refused command: one error line, and the workspace exactly as it was (no new run folder, no change)."""
    line = assert_one_error(Outcome.of(result), code, message)
    after = tree(root)
    assert after == before, {"added": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after)),
                             "changed": sorted(k for k in before if k in after and after[k] != before[k])}
    return line


def _mount(path: Path, options: str) -> bool:
    """A tmpfs at ``path`` (root only); False where the system does not allow it."""
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


def _unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def read_only_folder(path: Path) -> Iterator[Path]:
    """An empty folder nothing can be written in: a read-only tmpfs as root (permissions do not stop root), a
    mode-555 folder otherwise."""
    path.mkdir(parents=True)
    if _mount(path, "ro,size=64k"):
        try:
            yield path
        finally:
            _unmount(path)
        return
    if os.geteuid() == 0:
        pytest.skip("no read-only folder: root ignores permissions and cannot mount here")
    path.chmod(0o555)
    try:
        yield path
    finally:
        path.chmod(0o755)


@contextlib.contextmanager
def full_folder(path: Path) -> Iterator[Path]:
    """A folder on a full file system: names can be made, no byte can be written (root only: a small tmpfs)."""
    path.mkdir(parents=True)
    if not _mount(path, "size=64k"):
        pytest.skip("a full file system needs a tmpfs mount (root)")
    try:
        fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        yield path
    finally:
        _unmount(path)


def make_run(runs_dir: Path, data_dir: Path, *extra: str) -> Path:
    """One finished tiny run (3 steps, a 1-step profiler window), in this process: a real run folder to read."""
    from tests.cli import invoke

    before = set(runs_dir.iterdir()) if runs_dir.is_dir() else set()
    r = invoke("train", "--preset", "tiny", "--steps", "3", "--quiet", "--compile", "off", "--profile-steps", "0,1,1",
               "--runs-dir", runs_dir, "--data-dir", data_dir, *extra)
    assert r.exit_code == 0, r.output
    (new,) = set(runs_dir.iterdir()) - before
    return new


def assert_unchanged(root: Path, before: dict[str, str]) -> None:
    """A failed (not refused) command may leave what it made, e.g. a data cache; nothing already there changed."""
    after = tree(root)
    assert {k: after.get(k) for k in before} == before, sorted(k for k in before if after.get(k) != before[k])
