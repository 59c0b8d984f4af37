"""Every command, fed bad input: no traceback, one ``error:`` line on stderr, the promised exit code, and no run
folder left behind by a command that was refused (the README's promise, issue 17)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from golfprof.model.data import HEADER_BYTES, write_shard
from tests.cli import invoke


def _shard(folder: Path, name: str, tokens: np.ndarray) -> Path:
    path = folder / name
    write_shard(path, tokens)
    return path


def truncated(tmp: Path) -> Path:
    path = _shard(tmp, "truncated.bin", np.arange(4000) % 64)
    path.write_bytes(path.read_bytes()[:-100])
    return path


def bad_magic(tmp: Path) -> Path:
    path = _shard(tmp, "magic.bin", np.arange(4000) % 64)
    raw = bytearray(path.read_bytes())
    raw[0:4] = (1234).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    return path


def past_vocab(tmp: Path) -> Path:
    tokens = np.arange(4000) % 64
    tokens[1234] = 64  # the tiny preset's vocabulary is 64
    return _shard(tmp, "vocab.bin", tokens)


def a_file(tmp: Path) -> Path:
    path = tmp / "a-file"
    path.write_text("not a folder")
    return path


def json_file(text: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "input.json"
        path.write_text(text)
        return path
    return make


def run_dir(tmp: Path) -> Path:
    """A run directory that looks finished enough to be read: a summary, nothing else."""
    path = tmp / "run"
    path.mkdir()
    (path / "summary.json").write_text(json.dumps({"ms_per_step": 1.0, "preset": "tiny"}))
    return path


TINY = ["--preset", "tiny", "--steps", "4", "--quiet"]
ABLATE2 = ["ablate", "--nproc", "2", *TINY]

# (id, argv with {x} for the made input, the input maker, what the error line must say, exit code)
CASES: list[tuple[str, list[str], Callable[[Path], Path] | None, str, int]] = [
    ("train-runs-dir-file", ["train", *TINY, "--runs-dir", "{x}"], a_file, "is a file, not a folder", 2),
    ("train-runs-dir-under-file", ["train", *TINY, "--runs-dir", "{x}/runs"], a_file, "which is a file", 2),
    ("train-truncated-shard", ["train", *TINY, "--data", "{x}"], truncated, "size mismatch", 2),
    ("train-vocab-shard", ["train", *TINY, "--data", "{x}"], past_vocab, "at position 1234", 2),
    ("train-warmup", ["train", *TINY, "--warmup-steps", "4"], None, "must be below --steps 4", 2),
    ("train-cuda", ["train", *TINY, "--device", "cuda"], None, "GPU(s) present", 2),
    ("train-unknown-option", ["train", "--bogus"], None, "No such option", 2),
    ("ablate-nproc-0", ["ablate", "--nproc", "0", *TINY], None, "--nproc must be >= 1", 2),
    ("ablate-runs-dir-file", [*ABLATE2, "--runs-dir", "{x}"], a_file, "is a file, not a folder", 2),
    ("matrix-runs-dir-file", [*ABLATE2, "--variant", "explicit_banks", "--variant", "eager", "--runs-dir", "{x}"],
     a_file, "is a file, not a folder", 2),
    ("matrix-dir-file", [*ABLATE2, "--repeats", "2", "--matrix-dir", "{x}"], a_file, "--matrix-dir", 2),
    ("ablate2-truncated-shard", [*ABLATE2, "--data", "{x}"], truncated, "size mismatch", 2),
    ("ablate2-bad-magic", [*ABLATE2, "--data", "{x}"], bad_magic, "bad magic 1234", 2),
    ("ablate2-vocab-shard", [*ABLATE2, "--data", "{x}"], past_vocab, "outside the vocabulary of 64", 2),
    ("ablate2-profile-steps", [*ABLATE2, "--profile-steps", "9,1,3"], None, "needs 13 steps", 2),
    ("ablate2-warmup", [*ABLATE2, "--warmup-steps", "7"], None, "must be below --steps 4", 2),
    ("matrix-warmup", [*ABLATE2, "--repeats", "2", "--warmup-steps", "7"], None, "must be below --steps 4", 2),
    ("analyze-missing", ["analyze", "{x}/nope"], a_file, "no such file or directory", 2),
    ("analyze-not-json", ["analyze", "{x}"], json_file("{not json"), "", 2),
    ("diff-missing", ["diff", "{x}/a", "{x}/b"], a_file, "", 2),
    ("dashboard-missing", ["dashboard", "{x}/nope", "-o", "{x}.html"], a_file, "", 2),
    ("regress-json-number", ["regress", "{x}", "--baseline", "{x}"], json_file("5"), "not an object", 2),
    ("regress-baseline-no-summary", ["regress", "{x}", "--baseline", "{x}"], json_file('{"golfprof_baseline": 1}'),
     "'summary'", 2),
    ("regress-bad-bound", ["regress", "{x}", "--baseline", "{x}", "--max-increase", "lots"], run_dir,
     "--max-increase", 2),
    ("baseline-save-missing", ["baseline", "save", "{x}/nope", "-o", "{x}/b.json"], a_file, "", 2),
    ("baseline-save-number", ["baseline", "save", "{x}", "-o", "{x}.out"], json_file("[1, 2]"), "not an object", 2),
    ("bench-overhead-pairs", ["bench", "overhead", "--pairs", "0"], None, "--pairs must be >= 1", 2),
    ("bench-overhead-data-dir", ["bench", "overhead", "--data-dir", "{x}"], a_file, "is a file", 2),
    ("bench-ortho-reps", ["bench", "ortho", "--device", "cpu", "--reps", "0"], None, "--reps", 2),
    ("bench-ortho-kernels", ["bench", "ortho", "--device", "cpu", "--kernels", "nope"], None, "choose from", 2),
    ("variants-unknown-option", ["variants", "--bogus"], None, "No such option", 2),
    ("unknown-command", ["trian"], None, "No such command", 2),
]


@pytest.mark.parametrize("argv,make,message,code", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line(argv, make, message, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default runs/ and data/ folders land here, where the test can look
    x = make(tmp_path) if make else tmp_path
    r = invoke(*(a.replace("{x}", str(x)) for a in argv))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == code, (r.exit_code, r.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert message in lines[0], lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "a refused command left a run"


def test_a_bad_id_in_a_later_shard_is_refused_when_it_is_loaded(tmp_path):
    """The parent checks the first shard's ids; the stream checks each later shard as it loads it."""
    from golfprof.errors import ShardError
    from golfprof.model.data import TokenStream

    _shard(tmp_path, "a.bin", np.arange(100) % 64)
    bad = np.arange(100) % 64
    bad[7] = 500
    _shard(tmp_path, "b.bin", bad)
    stream = TokenStream(tmp_path, vocab_size=64)
    stream.take(100)
    with pytest.raises(ShardError, match=r"b\.bin: token id 500 at position 7 \(byte %d\)" % (HEADER_BYTES + 14)):
        stream.take(1)


def test_two_runs_of_one_configuration_in_one_folder_are_mixed_runs(tmp_path):
    """Their traces carry the run's id and start, so they are not taken for two windows of one run."""
    for _ in range(2):
        r = invoke("train", *TINY, "--compile", "off", "--profile-steps", "0,1,1", "--runs-dir", tmp_path / "runs",
                   "--data-dir", tmp_path / "data")
        assert r.exit_code == 0, r.output
    both = tmp_path / "both"
    both.mkdir()
    for i, run in enumerate(sorted((tmp_path / "runs").iterdir())):
        (trace,) = (run / "trace").iterdir()
        (both / f"rank0.run{i}.pt.trace.json.gz").write_bytes(trace.read_bytes())
    r = invoke("analyze", both, "--jobs", "1")
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "mixed runs in one folder: two runs of one configuration" in r.stderr
