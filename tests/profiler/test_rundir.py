import json
from pathlib import Path

import pytest

from golfprof.profiler.rundir import new_run_dir, write_json


def test_run_dirs_are_never_reused(tmp_path: Path):
    a = new_run_dir(tmp_path, "v")
    b = new_run_dir(tmp_path, "v")
    assert a != b and a.is_dir() and b.is_dir()


def test_failed_write_keeps_the_previous_file(tmp_path: Path):
    path = tmp_path / "summary.json"
    write_json(path, {"ok": 1})

    class Boom:
        def __str__(self):
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_json(path, {"bad": Boom()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
