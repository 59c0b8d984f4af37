"""Class 2 of issue 28: the operating system's refusals are ``error: <path>: <reason>``, exit 1, no traceback.

Read-only and full file systems under every command that writes, a measurement kept when its file cannot be
written, a full or closed stdout, and a broken pipe that never stops a matrix (``golfprof ablate ... | head -1``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from golfprof.profiler.rundir import write_result
from tests.cli import invoke
from tests.golfprof.refusal import (
    Outcome,
    assert_one_error,
    assert_refused,
    assert_unchanged,
    full_folder,
    make_run,
    make_workspace,
    tree,
)

TINY = ["--preset", "tiny", "--steps", "2", "--quiet", "--compile", "off", "--profile-steps", "off"]
REASONS = ("Read-only file system", "Permission denied")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("made")
    return make_run(base / "runs", base / "data")


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    root = make_workspace(tmp_path / "work")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def read_only(tmp_path):
    from tests.golfprof.refusal import read_only_folder

    with read_only_folder(tmp_path / "ro") as path:
        yield path


# (id, argv with {ro} for the read-only folder and {run} for a finished run); every one is refused before its work
READ_ONLY_CASES = [
    ("train-runs-dir", ["train", *TINY, "--runs-dir", "{ro}"]),
    ("train-runs-dir-below", ["train", *TINY, "--runs-dir", "{ro}/runs"]),
    ("train-data-dir", ["train", *TINY, "--data-dir", "{ro}/data"]),
    ("ablate2-runs-dir", ["ablate", "--nproc", "2", *TINY, "--runs-dir", "{ro}"]),
    ("ablate2-matrix-dir", ["ablate", "--nproc", "2", "--repeats", "2", *TINY, "--matrix-dir", "{ro}/m"]),
    ("matrix-default-dir", ["ablate", "--variant", "explicit_banks", "--variant", "polar_express", *TINY,
                            "--runs-dir", "{ro}"]),
    ("baseline-save", ["baseline", "save", "{run}", "-o", "{ro}/baseline.json"]),
    ("dashboard", ["dashboard", "{run}", "-o", "{ro}/report.html"]),
    ("bench-comm", ["bench", "comm", "--out", "{ro}/comm.json"]),
    ("bench-overhead", ["bench", "overhead", "--pairs", "1", "--out", "{ro}/overhead.json"]),
    ("bench-ortho", ["bench", "ortho", "--device", "cpu", "--reps", "1", "--out", "{ro}/ortho.json"]),
    ("analyze-merged-trace", ["analyze", "{run}", "--merged-trace", "{ro}/merged.json"]),
]


@pytest.mark.parametrize("argv", [c[1] for c in READ_ONLY_CASES], ids=[c[0] for c in READ_ONLY_CASES])
def test_a_read_only_folder_is_one_error_line(argv, workspace, read_only, run_folder):
    before = tree(workspace)
    r = invoke(*(a.replace("{ro}", str(read_only)).replace("{run}", str(run_folder)) for a in argv))
    line = assert_refused(r, 1, f"error: {read_only}", workspace, before)
    assert line.endswith(REASONS), line
    assert not any(read_only.iterdir())


@pytest.fixture
def full(tmp_path):
    with full_folder(tmp_path / "full") as path:
        yield path


FULL_CASES = [
    ("train", ["train", *TINY, "--runs-dir", "{full}"]),
    ("baseline-save", ["baseline", "save", "{run}", "-o", "{full}/baseline.json"]),
    ("dashboard", ["dashboard", "{run}", "-o", "{full}/report.html", "--no-diff"]),
]


@pytest.mark.parametrize("argv", [c[1] for c in FULL_CASES], ids=[c[0] for c in FULL_CASES])
def test_a_full_disk_is_one_error_line_and_no_half_written_file(argv, workspace, full, run_folder):
    before = tree(workspace)
    r = invoke(*(a.replace("{full}", str(full)).replace("{run}", str(run_folder)) for a in argv))
    line = assert_one_error(Outcome.of(r), 1, f"error: {full}")
    assert line.endswith("No space left on device"), line
    assert_unchanged(workspace, before)
    assert not [p for p in full.rglob("*") if p.name.endswith(".tmp")], "a half-written temporary file was left"


def test_a_measurement_that_cannot_be_written_is_kept(workspace, full, tmp_path, monkeypatch):
    """bench comm measures first and writes last: the table is kept in the temp folder, and the error says where."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    r = invoke("bench", "comm", "--op", "all_reduce", "--min-bytes", "4096", "--max-bytes", "4096",
               "--out", full / "comm.json")
    line = assert_one_error(Outcome.of(r), 1, f"error: {full}/comm.json: No space left on device")
    kept = Path(line.split("the result is kept in ")[1])
    assert kept.parent == tmp_path and json.loads(kept.read_text())["format"] == "golfprof-comm-table/1"


def test_write_result_keeps_a_copy_only_when_the_write_fails(tmp_path, read_only, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    write_result(tmp_path / "ok.json", {"a": 1})
    assert json.loads((tmp_path / "ok.json").read_text()) == {"a": 1}
    assert not list(tmp_path.glob("golfprof-*"))
    with pytest.raises(OSError, match="the result is kept in") as e:
        write_result(read_only / "no.json", {"a": 2})
    assert e.value.filename == str(read_only / "no.json")
    (kept,) = tmp_path.glob("golfprof-no-*.json")
    assert json.loads(kept.read_text()) == {"a": 2}


# bench comm's --out is checked before the sweep: a file there that is not a table would lose the measurement
NOT_A_TABLE = [
    ("json-list", lambda p: p.write_text("[1, 2]")),
    ("not-json", lambda p: p.write_text("{not json")),
    ("other-json", lambda p: p.write_text('{"format": "something else"}')),
    ("binary", lambda p: p.write_bytes(b"\xff\xfe\x00")),
]


@pytest.mark.parametrize("make", [c[1] for c in NOT_A_TABLE], ids=[c[0] for c in NOT_A_TABLE])
def test_bench_comm_refuses_an_output_that_is_not_a_table_before_measuring(make, workspace):
    make(workspace / "comm.json")
    before = tree(workspace)
    assert_refused(invoke("bench", "comm", "--out", "comm.json"), 2, "is not a golfprof comm table", workspace,
                   before)


def _golfprof(*args: str, **kw) -> subprocess.CompletedProcess:  # noqa: ANN003 - subprocess.run's
    return subprocess.run([sys.executable, "-m", "golfprof.cli", *args], text=True, timeout=120, **kw)


def test_a_full_stdout_is_one_error_line():
    with open("/dev/full", "w") as full_dev:
        r = _golfprof("variants", stdout=full_dev, stderr=subprocess.PIPE)
    assert_one_error(Outcome(r.returncode, "", r.stderr), 1, "error: <stdout>: No space left on device")


def test_a_closed_stdout_is_not_an_error():
    r = _golfprof("variants", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1))
    assert r.returncode == 0 and r.stderr == ""


def test_a_broken_pipe_never_stops_a_matrix(tmp_path):
    """`golfprof ablate ... | head -1`: head leaves after the first line; every run of the matrix still runs,
    the comparison is written and the exit status is the work's."""
    cmd = (f"{sys.executable} -m golfprof.cli ablate --variant explicit_banks --variant polar_express "
           f"{' '.join(TINY)} --runs-dir runs --data-dir data --matrix-dir m | head -1; exit ${{PIPESTATUS[0]}}")
    r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("matrix: ") and r.stdout.count("\n") == 1
    assert "Traceback" not in r.stderr and "error" not in r.stderr, r.stderr
    state = json.loads((tmp_path / "m" / "matrix.json").read_text())
    assert {n: i["status"] for n, i in state["runs"].items()} == {"explicit_banks-r0": "ok", "polar_express-r0": "ok"}
    assert (tmp_path / "m" / "comparison.json").is_file()
