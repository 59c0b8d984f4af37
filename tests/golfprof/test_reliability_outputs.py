"""Class 3 of issue 28: an output is written only to a regular file or a new path. An existing file is replaced
only with --force (dashboard -o, baseline save -o) or where replacing is the command's convention (bench results:
the newest measurement; bench comm: merged; analyze --merged-trace: derived); a folder, FIFO, device node or a
link to one is never replaced, with or without --force, and a link to a regular file stays a link."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pytest

from golfprof.errors import ConfigError
from golfprof.profiler.rundir import write_json, write_text
from tests.cli import invoke
from tests.golfprof.refusal import assert_refused, make_run, make_workspace, tree


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("made")
    return make_run(base / "runs", base / "data")


def fifo(p: Path) -> str:
    os.mkfifo(p)
    return "is a FIFO"


def folder(p: Path) -> str:
    p.mkdir()
    return "is a folder"


def link_to_device(p: Path) -> str:
    p.symlink_to("/dev/null")
    return "is a character device"


def link_to_fifo(p: Path) -> str:
    os.mkfifo(p.with_name("real-fifo"))
    p.symlink_to(p.with_name("real-fifo"))
    return "is a FIFO"


def device_node(p: Path) -> str:
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    os.mknod(p, 0o600 | 0o020000, os.makedev(1, 3))  # a character device, as /dev/null
    return "is a character device"


def regular(p: Path) -> str:
    p.write_text("earlier output")
    return "exists; pass --force to replace it"


KINDS: dict[str, Callable[[Path], str]] = {"fifo": fifo, "folder": folder, "link-to-device": link_to_device,
                                           "link-to-fifo": link_to_fifo, "device-node": device_node}

# (id, argv with {out} for the output path and {run} for a finished run, whether replacing a file is the convention)
COMMANDS = [
    ("dashboard", ["dashboard", "{run}", "-o", "{out}"], False),
    ("baseline-save", ["baseline", "save", "{run}", "-o", "{out}"], False),
    ("bench-comm", ["bench", "comm", "--out", "{out}"], True),
    ("bench-overhead", ["bench", "overhead", "--pairs", "1", "--out", "{out}"], True),
    ("bench-ortho", ["bench", "ortho", "--device", "cpu", "--reps", "1", "--out", "{out}"], True),
    ("bench-attention", ["bench", "attention", "--device", "cpu", "--preset", "tiny", "--reps", "1", "--out", "{out}"],
     True),
    ("analyze-merged-trace", ["analyze", "{run}", "--merged-trace", "{out}"], True),
]
CASES = [(f"{c}-{k}", argv, make, force) for c, argv, _ in COMMANDS for k, make in KINDS.items()
         for force in ((False, True) if c in ("dashboard", "baseline-save") else (False,))]
CASES += [(f"{c}-regular", argv, regular, False) for c, argv, convention in COMMANDS if not convention]


def _argv(argv: list[str], out: Path, run: Path, force: bool) -> list[str]:
    return [a.replace("{out}", str(out)).replace("{run}", str(run)) for a in argv] + (["--force"] if force else [])


@pytest.mark.parametrize("argv,make,force", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_output_never_replaces_what_is_not_a_regular_file(argv, make, force, tmp_path, monkeypatch, run_folder):
    root = make_workspace(tmp_path / "work")
    monkeypatch.chdir(root)
    out = root / "out.json"
    message = make(out)
    before = tree(root)
    assert_refused(invoke(*_argv(argv, out, run_folder, force)), 2, message, root, before)


@pytest.mark.parametrize("argv", [c[1] for c in COMMANDS if not c[2]], ids=[c[0] for c in COMMANDS if not c[2]])
def test_force_replaces_a_regular_file_and_writes_through_a_link(argv, tmp_path, monkeypatch, run_folder):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "real.out"
    target.write_text("earlier output")
    link = tmp_path / "link.out"
    link.symlink_to(target)
    r = invoke(*_argv(argv, link, run_folder, True))
    assert r.exit_code == 0, r.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() != "earlier output"
    r = invoke(*_argv(argv, target, run_folder, True))
    assert r.exit_code == 0, r.output


def test_the_writers_themselves_never_replace_a_fifo(tmp_path):
    """Library writers, whatever called them: a FIFO put at a path since the command's check stays a FIFO."""
    path = tmp_path / "x.json"
    os.mkfifo(path)
    for write in (lambda: write_json(path, {"a": 1}), lambda: write_text(path, "x")):
        with pytest.raises(ConfigError, match="is a FIFO"):
            write()
        assert path.is_fifo()
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"], "no temporary file is left"


def test_bench_comm_merges_into_its_own_table(tmp_path, monkeypatch):
    """Replacing is bench comm's convention: a table already there keeps its other world sizes."""
    monkeypatch.chdir(tmp_path)
    table = {"format": "golfprof-comm-table/1", "name": "old", "measured": {"all_reduce": {"8": [[4096, 9.0]]}}}
    Path("t.json").write_text(json.dumps(table))
    r = invoke("bench", "comm", "--op", "all_reduce", "--min-bytes", "4096", "--max-bytes", "4096", "--out", "t.json")
    assert r.exit_code == 0, r.output
    measured = json.loads(Path("t.json").read_text())["measured"]["all_reduce"]
    assert set(measured) == {"1", "8"} and measured["8"] == [[4096, 9.0]]
