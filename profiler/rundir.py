"""Run directories: unique, never overwritten, and written file by file atomically.

This module is the one owner of the layout of a run directory and of a matrix folder: every file
name is spelled here (``RunDir``, ``MatrixDir``) and nowhere else, so readers and writers cannot
drift apart. docs/run-directory.md is the written contract for users who read these folders.
Torch-free at import time: dashboards and result readers use it without a trainer.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from golfprof.errors import ConfigError

from .record import RunRecord

# One run directory (see RunDir). Changing a name here changes the contract in docs/run-directory.md.
CONFIG = "config.json"
ENV = "env.json"
SUMMARY = "summary.json"
STEPS = "steps"
PHASES = "phases"
TRACE = "trace"
SIMULATED = "simulated"  # a simulated-world run: what its fake ranks recorded, and the prediction
PREDICTED = "predicted.json"
LAUNCH_LOGS = "launch_logs"
COLLECTIVES = "collectives"  # a profiled script's real ranks: every collective each issued (golfprof profile)
SCRIPT = "script"  # a profiled script: a copy of its source, and what each rank reported
LAUNCH_STDERR = "stderr.log"
LOCK = ".lock"  # flocked while a live run owns the folder (golfprof.ablations.ownership); holds its pid
TRACE_SUFFIX = ".pt.trace.json"  # PyTorch's own trace naming, which HTA and Perfetto users expect
TRACE_GLOB = f"*{TRACE_SUFFIX}*"  # any Kineto trace, gzipped or not, whatever wrote it
SET_ASIDE = ".incomplete-"
STAMP_FORMAT = "%Y%m%d-%H%M%S"
# One matrix folder (see MatrixDir).
MATRIX_STATE = "matrix.json"
COMPARISON_JSON = "comparison.json"
COMPARISON_CSV = "comparison.csv"

_STAMP = re.compile(r"^(\d{8}-\d{6})")
_RANK_FILE = re.compile(r"^rank(\d+)\.parquet$")
_SIM_FILE = re.compile(r"^collectives-rank(\d+)\.parquet$")
_SCRIPT_RANK_FILE = re.compile(r"^rank(\d+)\.json$")
# Keys of RunSpec that config.json does not repeat under "launch": the configuration is the top level,
# and the warm-up actually used is stored once as "warmup_steps".
_NOT_LAUNCH = ("config", "warmup_steps")


def new_run_dir(base: Path, variant: str) -> Path:
    """runs/<timestamp>-<variant>/, with a numeric suffix rather than reusing an existing folder."""
    return RunDir.new(base, variant).path


def _kind(path: Path) -> str:
    """What a non-regular file is, in words, for refusing to write over it."""
    import stat

    mode = path.lstat().st_mode
    for test, word in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return word
    return "not a regular file"


def _landing(path: Path) -> Path:
    """Where a write to ``path`` lands: through a symlink to its target (the link stays a link); a folder, FIFO,
    device node or socket is never replaced by a regular file."""
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    if os.path.lexists(real) and not real.is_file():
        shown = f"{path} (a link to {real})" if real != path else str(path)
        raise ConfigError(f"{shown} is {_kind(real)}; golfprof writes only to regular files or new paths")
    return real


def _named(e: OSError, path: Path) -> OSError:
    """The error of a write, naming the file written (not its temporary name): ``<path>: <reason>``."""
    return OSError(e.errno, e.strerror or str(e), str(path))


def _atomic(path: Path, write) -> None:
    """Temp file in the target folder, then rename: a reader never sees half a file. Failures of the file
    system (read-only, full) are raised as OSError naming ``path``; nothing half-written is left."""
    path = _landing(Path(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _named(e, path) from None
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes files private; results are for sharing
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _named(e, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output(path: Path, flag: str, force: bool = False) -> None:
    """An output a command will write, checked before its work: a new path, or a regular file it may replace
    (``force``: the user said so, or replacing is the command's convention); never a folder, FIFO or device
    node; and a folder it can write in (a read-only one is an OSError now, not after a measurement)."""
    path = Path(path)
    try:
        real = _landing(path)
    except ConfigError as e:
        raise ConfigError(f"{flag} {e}") from None
    if real.is_file() and not force:
        raise ConfigError(f"{flag} {path} exists; pass --force to replace it")
    check_writable(flag, real.parent)


def check_writable(flag: str, folder: Path) -> None:
    """A folder a command will create files in (made if missing): refused before its work when it, or the
    nearest existing folder above it, is no folder (ConfigError) or cannot be written in (OSError naming it)."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{flag} {folder}: {probe} is not a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".golfprof-", suffix=".probe")
    except OSError as e:
        raise _named(e, probe) from None
    os.close(fd)
    os.unlink(tmp)


def write_result(path: Path, obj: Any) -> None:
    """A measurement's result JSON, kept first in the temp folder: a write that fails (a read-only or full file
    system, a FIFO put there since the command started) then loses nothing, and its error names the copy."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    try:
        fd, kept = tempfile.mkstemp(prefix=f"golfprof-{Path(path).stem}-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError:
        kept = None  # no room there either: the write below is the only copy
    try:
        write_text(path, text)
    except ConfigError as e:
        if kept is None:
            raise
        raise ConfigError(f"{e}; the result is kept in {kept}") from None
    except OSError as e:
        if kept is None:
            raise
        raise OSError(e.errno, f"{e.strerror}; the result is kept in {kept}", e.filename) from None
    if kept is not None:
        os.unlink(kept)


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


def _git(args: list[str], cwd: Path) -> bytes | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """The code that ran: its revision, whether the tree differed from it, and a hash of how (``git diff HEAD``
    and the names of untracked files), so two runs of "the same revision" with different edits differ here."""
    cwd = cwd or Path(__file__).parent
    diff = _git(["diff", "HEAD", "--no-color", "--no-ext-diff", "--binary"], cwd)
    untracked = _git(["ls-files", "--others", "--exclude-standard", "-z"], cwd)
    if diff is None or untracked is None:
        return {"git_revision": git_revision(cwd), "git_dirty": None, "git_diff_sha256": None}
    dirty = bool(diff or untracked)
    digest = hashlib.sha256(diff + b"\0untracked\0" + untracked).hexdigest() if dirty else None
    return {"git_revision": git_revision(cwd), "git_dirty": dirty, "git_diff_sha256": digest}


COMPILER_ENV = ("TORCHINDUCTOR_", "TORCHDYNAMO_", "TORCH_COMPILE_", "TRITON_", "PYTHONHASHSEED")


def compiler_env() -> dict[str, str]:
    """The compiler's settings from the environment (TORCHINDUCTOR_MIX_ORDER_REDUCTION=0 changes which kernels a
    step runs): two runs that differ here are not like for like. Cache folders are left out: they move no figure."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(COMPILER_ENV) and "CACHE_DIR" not in k}


def environment(world_size: int, backend: str) -> dict[str, Any]:
    """What a reader needs to trust (or reproduce) a figure from this run."""
    import torch  # here, not at module level: the dashboard writes files through this module

    cuda = torch.cuda.is_available()
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "device": (torch.cuda.get_device_name(0) if cuda
                   else f"cpu: {platform.processor() or platform.machine()} x{os.cpu_count()}"),
        "python": platform.python_version(),
        "hostname": platform.node(),
        **git_state(),
        "world_size": world_size,
        "backend": backend,
        "tf32": torch.backends.cuda.matmul.allow_tf32,
        "compiler_env": compiler_env(),
        # in the data, not the file system: copies, archives and git checkouts reset mtimes
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def read_json(path: Path) -> Any:
    """Parsed JSON; raises OSError or ValueError (bad JSON or encoding) for the caller to word."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _object(path: Path) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def config_form(raw: dict[str, Any]) -> dict[str, Any]:
    """config.json in today's form: the run config at top level, ``launch``, ``warmup_steps`` and
    ``profile_window`` once each. Files written before the change kept the launch spec (with a second
    copy of the config) under ``spec``; they read the same way."""
    if "spec" not in raw or "launch" in raw:
        return raw
    out = {k: v for k, v in raw.items() if k != "spec"}
    spec = raw["spec"] if isinstance(raw["spec"], dict) else {}
    out["launch"] = {k: v for k, v in spec.items() if k not in _NOT_LAUNCH}
    return out


@dataclass(frozen=True)
class RunDir:
    """One run's folder: its paths, atomic writers and readers, and the "complete" rule.

    Rank 0 writes config.json and env.json at the start and summary.json last; every rank writes its
    steps, phases and (with a profiler window) trace file. A run is complete when summary.json exists.
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def new(cls, base: Path, variant: str) -> RunDir:
        """base/<YYYYmmdd-HHMMSS>-<variant>[-i], created here: an existing folder is never reused."""
        base = Path(base)
        base.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now().strftime(STAMP_FORMAT)
        for i in range(1000):
            path = base / (f"{stamp}-{variant}" + (f"-{i}" if i else ""))
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                continue
        raise FileExistsError(f"could not create a fresh run directory under {base}")

    # paths
    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def env(self) -> Path:
        return self.path / ENV

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY

    @property
    def steps_dir(self) -> Path:
        return self.path / STEPS

    @property
    def phases_dir(self) -> Path:
        return self.path / PHASES

    @property
    def trace_dir(self) -> Path:
        return self.path / TRACE

    @property
    def launch_logs(self) -> Path:
        """Kept by the launcher when a job fails: torchrun's per-rank log tree, or a lone worker's stderr."""
        return self.path / LAUNCH_LOGS

    @property
    def launch_stderr(self) -> Path:
        return self.launch_logs / LAUNCH_STDERR

    @property
    def lock(self) -> Path:
        """Locked by the run's launcher and ranks while they live: one live run per folder."""
        return self.path / LOCK

    def steps(self, rank: int) -> Path:
        return self.steps_dir / f"rank{rank}.parquet"

    def phases(self, rank: int) -> Path:
        return self.phases_dir / f"rank{rank}.parquet"

    def trace(self, rank: int) -> Path:
        """The rank's profiler window, gzipped Chrome/Kineto JSON."""
        return self.trace_dir / f"rank{rank}{TRACE_SUFFIX}.gz"

    # simulated worlds (ablations/simulate.py records, golfprof.predict reads and predicts)
    @property
    def simulated_dir(self) -> Path:
        return self.path / SIMULATED

    @property
    def predicted(self) -> Path:
        """The prediction: `golfprof analyze`'s JSON schema with ``"predicted": true``."""
        return self.simulated_dir / PREDICTED

    @property
    def predicted_trace_dir(self) -> Path:
        return self.simulated_dir / TRACE

    def predicted_trace(self, rank: int) -> Path:
        """A rank's predicted timeline (modelled collectives inserted), gzipped Kineto JSON for Perfetto."""
        return self.predicted_trace_dir / f"rank{rank}{TRACE_SUFFIX}.gz"

    def predicted_traces(self) -> list[Path]:
        d = self.predicted_trace_dir
        return sorted(d.glob(f"rank{TRACE_GLOB}")) if d.is_dir() else []

    def collectives(self, rank: int) -> Path:
        """Every collective simulated rank ``rank`` issued: op, dtype, bytes, group, phase, issue/wait times."""
        return self.simulated_dir / f"collectives-rank{rank}.parquet"

    def phase_events(self, rank: int) -> Path:
        """The simulated rank's phase enter/exit times, on the recorder's clock."""
        return self.simulated_dir / f"phase-events-rank{rank}.parquet"

    def predicted_trace_set(self) -> Path | None:
        """The predicted traces `golfprof diff` compares for a simulated run, else None: the folder when it holds
        every rank of the world, else the last simulated rank's one trace (a folder missing ranks is refused by
        the trace readers)."""
        folder, found = self.predicted_trace_dir, self.predicted_traces()
        if not found:
            return None
        try:
            sim = self.read_record().simulated
        except (OSError, ValueError):
            sim = None
        world, played = (sim.world_size, sim.ranks) if sim is not None else (len(found), [])
        if len(found) >= world or not played:
            return folder
        one = self.predicted_trace(played[-1])
        return one if one.is_file() else folder

    def simulated_ranks(self) -> list[int]:
        """Ranks with a recorded collectives table."""
        d = self.simulated_dir
        found = (_SIM_FILE.match(p.name) for p in d.iterdir()) if d.is_dir() else ()
        return sorted(int(m.group(1)) for m in found if m)

    # profiled scripts (ablations/script.py writes, ablations/script_summary.py and traces/recorded.py read)
    @property
    def script_dir(self) -> Path:
        return self.path / SCRIPT

    def script_copy(self, name: str) -> Path:
        """The profiled script's source as it ran, under its own file name."""
        return self.script_dir / Path(name).name

    def script_rank(self, rank: int) -> Path:
        """What rank ``rank`` of a profiled script reported: how it ended, its steps, device, attention, notes."""
        return self.script_dir / f"rank{rank}.json"

    def script_ranks(self) -> list[int]:
        d = self.script_dir
        found = (_SCRIPT_RANK_FILE.match(p.name) for p in d.iterdir()) if d.is_dir() else ()
        return sorted(int(m.group(1)) for m in found if m)

    def recorded_collectives(self, rank: int) -> Path:
        """Every collective real rank ``rank`` of a profiled script issued (the simulated ranks': collectives())."""
        return self.path / COLLECTIVES / f"rank{rank}.parquet"

    # state
    def is_complete(self) -> bool:
        """summary.json is written last, after every rank wrote its files: its presence means complete."""
        return self.summary.is_file()

    def is_unfinished(self) -> bool:
        """Started (config.json written) but never finished: an interrupted or failed run."""
        return self.config.exists() and not self.is_complete()

    @property
    def is_set_aside(self) -> bool:
        """A folder that set_aside() renamed: an earlier, interrupted attempt."""
        return SET_ASIDE in self.path.name

    def stamp(self) -> dt.datetime | None:
        """The local start time in a name made by new(), if the name has one."""
        m = _STAMP.match(self.path.name)
        return dt.datetime.strptime(m.group(1), STAMP_FORMAT) if m else None

    def timed_steps(self) -> list[int]:
        """The steps the medians use, in order: the one rule (profiler/window.timed_steps) applied to config.json
        (either form): from ``warmup_steps`` on, outside the profiler window where other steps remain (a profiled
        script's: nor the step after it, which pays the export). A run directory without config.json (a producer
        that writes none) uses its record's steps from the warm-up on."""
        from .window import Window, timed_steps

        if not self.config.exists():
            rec = self.read_record()
            return list(range(rec.warmup_steps or 0, rec.steps or 0))
        config = self.read_config()
        w = config.get("profile_window")
        return sorted(timed_steps(int(config["train"]["steps"]), int(config.get("warmup_steps") or 0),
                                  Window(**w) if w else None, export_step="script" in config))

    def ranks(self) -> list[int]:
        """Ranks whose step table is present (every rank writes one when it finishes training)."""
        if not self.steps_dir.is_dir():
            return []
        found = (_RANK_FILE.match(p.name) for p in self.steps_dir.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def traces(self) -> list[Path]:
        """The per-rank trace files present, in name order."""
        return sorted(self.trace_dir.glob(f"rank{TRACE_GLOB}"))

    def set_aside(self) -> RunDir:
        """Rename an interrupted run's folder to <name>.incomplete-N (first free N), never deleting it."""
        for i in range(1, 1000):
            target = self.path.with_name(f"{self.path.name}{SET_ASIDE}{i}")
            if not target.exists():
                self.path.rename(target)
                return RunDir(target)
        raise FileExistsError(f"{self.path}: no free {SET_ASIDE}N name to set it aside under")

    # writers (each file atomically: a reader never sees half of one)
    def write_config(self, config: dict[str, Any], launch: dict[str, Any], warmup_steps: int,
                     profile_window: dict[str, Any] | None) -> None:
        """The run config (preset, model, train, toggles, variant) once at top level, the launch
        fields under "launch" (not its copy of the config), the warm-up used and the profiler window."""
        write_json(self.config, {**config, "launch": {k: v for k, v in launch.items() if k not in _NOT_LAUNCH},
                                 "warmup_steps": warmup_steps, "profile_window": profile_window})

    def write_env(self, env: dict[str, Any]) -> None:
        write_json(self.env, env)

    def write_record(self, record: RunRecord) -> None:
        """summary.json, the last file of a run: writing it marks the run complete."""
        write_json(self.summary, record.to_dict())

    def write_steps(self, rank: int, frame: pd.DataFrame) -> None:
        write_parquet(self.steps(rank), frame)

    def write_phases(self, rank: int, frame: pd.DataFrame) -> None:
        write_parquet(self.phases(rank), frame)

    def write_trace(self, rank: int, raw_trace: Path) -> None:
        """Gzip an exported (uncompressed) trace into the rank's trace path."""
        write_gzip_copy(raw_trace, self.trace(rank))

    # readers (raise OSError or ValueError; callers word the error for their command)
    def read_config(self) -> dict[str, Any]:
        """config.json in today's form, whichever form the file has (see config_form)."""
        return config_form(_object(self.config))

    def read_env(self) -> dict[str, Any]:
        return _object(self.env)

    def read_summary(self) -> dict[str, Any]:
        """The record as summary.json holds it, for printers that take a dict; read through :meth:`read_record`
        (checked, older files filled in)."""
        return self.read_record().to_dict()

    def read_record(self) -> RunRecord:
        """summary.json as the run record, whichever version wrote it (ValueError names a mistyped field)."""
        data = _object(self.summary)
        try:
            return RunRecord.from_dict(data)
        except ValueError as e:
            raise ValueError(f"{self.summary}: {e}") from None

    def steps_frame(self, rank: int = 0) -> pd.DataFrame:
        return pd.read_parquet(self.steps(rank))

    def phases_frame(self, rank: int = 0) -> pd.DataFrame:
        return pd.read_parquet(self.phases(rank))


@dataclass(frozen=True)
class MatrixDir:
    """A matrix folder: matrix.json (state), one RunDir per run named <variant>-r<k>, and the comparison."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def default(cls, runs_dir: Path, key: str) -> MatrixDir:
        """RUNS_DIR/matrix-<key>: the same command's work finds the same folder and resumes it."""
        return cls(Path(runs_dir) / f"matrix-{key}")

    @staticmethod
    def run_name(variant: str, repeat: int) -> str:
        return f"{variant}-r{repeat}"

    @property
    def state(self) -> Path:
        return self.path / MATRIX_STATE

    @property
    def comparison_json(self) -> Path:
        return self.path / COMPARISON_JSON

    @property
    def comparison_csv(self) -> Path:
        return self.path / COMPARISON_CSV

    @property
    def lock(self) -> Path:
        """Held by the golfprof process running the matrix: one live writer of matrix.json at a time."""
        return self.path / LOCK

    def run(self, variant: str, repeat: int) -> RunDir:
        return RunDir(self.path / self.run_name(variant, repeat))

    def run_named(self, name: str) -> RunDir:
        """The run a matrix.json entry names (its keys are run folder names)."""
        return RunDir(self.path / name)

    def is_matrix(self) -> bool:
        return self.state.is_file()

    def read_state(self) -> dict[str, Any]:
        """matrix.json, or a fresh state when the matrix has not started."""
        return _object(self.state) if self.state.exists() else {"runs": {}}

    def write_state(self, state: dict[str, Any]) -> None:
        """Rewritten after every run: killing the matrix loses at most the run in flight."""
        write_json(self.state, state)

    def write_comparison(self, result: dict[str, Any], frame: pd.DataFrame) -> None:
        write_json(self.comparison_json, result)
        _atomic(self.comparison_csv, lambda p: frame.to_csv(p, index=False))
