"""Run directories: unique, never overwritten, and written file by file atomically."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def new_run_dir(base: Path, variant: str) -> Path:
    """runs/<timestamp>-<variant>/, with a numeric suffix rather than reusing an existing folder."""
    base.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        name = f"{stamp}-{variant}" + (f"-{i}" if i else "")
        try:
            (base / name).mkdir()
            return base / name
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a fresh run directory under {base}")


def _atomic(path: Path, write) -> None:
    """Temp file in the target folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes files private; results are for sharing
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    _atomic(Path(path), lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: Path, obj: Any) -> None:
    _atomic(path, lambda p: p.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"))


def write_parquet(path: Path, df: pd.DataFrame) -> None:
    _atomic(path, lambda p: df.to_parquet(p, index=False))


def write_gzip_copy(src: Path, dest: Path) -> None:
    def _w(p: Path) -> None:
        with open(src, "rb") as fi, gzip.open(p, "wb", compresslevel=6) as fo:
            shutil.copyfileobj(fi, fo)
    _atomic(dest, _w)


def git_revision(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(world_size: int, backend: str) -> dict[str, Any]:
    """What a reader needs to trust (or reproduce) a figure from this run."""
    import torch  # here, not at module level: the dashboard writes files through this module

    cuda = torch.cuda.is_available()
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "device": torch.cuda.get_device_name(0) if cuda else f"cpu: {platform.processor() or platform.machine()} x{os.cpu_count()}",
        "python": platform.python_version(),
        "hostname": platform.node(),
        "git_revision": git_revision(),
        "world_size": world_size,
        "backend": backend,
        "tf32": torch.backends.cuda.matmul.allow_tf32,
        # in the data, not the file system: copies, archives and git checkouts reset mtimes
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
