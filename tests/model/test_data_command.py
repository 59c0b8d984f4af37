"""`golfprof data synth`: a folder a parameter-golf script can be pointed at, the same for the same seed, and
bad input refused in one line (exit 2) before anything is written."""

from __future__ import annotations

import numpy as np
import sentencepiece as spm

from golfprof.model.data import build_byte_luts, check_shards, read_shard
from tests.cli import invoke, run


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_synth_writes_what_the_scripts_read(tmp_path):
    out = tmp_path / "data"
    r = invoke("data", "synth", "--out", out, "--vocab", 600, "--train-tokens", 50_000, "--val-tokens", 9_000,
               "--shard-tokens", 20_000, "--tokenizer")
    assert r.exit_code == 0, r.output
    assert sorted(files(out)) == ["fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_train_000002.bin",
                                  "fineweb_val_000000.bin", "synthetic.json", "tokenizer.model"]
    env = r.output.strip().splitlines()[-1]
    assert env == f"DATA_PATH={out.resolve()} TOKENIZER_PATH={(out / 'tokenizer.model').resolve()} VOCAB_SIZE=600"
    # what a record checks at start-up: the glob, the vocab, the byte tables, "▁"
    train = check_shards(str(out / "fineweb_train_*.bin"), 600)
    assert sum(read_shard(p).size for p in train) == 50_000
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    assert sp.vocab_size() == 600 and sp.piece_to_id("\u2581") != sp.unk_id()
    val = read_shard(out / "fineweb_val_000000.bin")
    base, space, boundary = build_byte_luts(out / "tokenizer.model", 600)
    assert val.size == 9_000 and int(base[val.astype(np.int64)].sum()) > val.size  # val_bpb has bytes to count
    assert not boundary[val[val != 1].astype(np.int64)].any()  # only BOS is a control id in the shards


def test_synth_is_deterministic_for_a_seed(tmp_path):
    args = ("--vocab", 300, "--train-tokens", 5_000, "--val-tokens", 1_000, "--tokenizer")
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert invoke("data", "synth", "--out", tmp_path / name, *args, "--seed", seed).exit_code == 0
    a, b, c = (files(tmp_path / n) for n in "abc")
    assert a == b
    assert a["fineweb_train_000000.bin"] != c["fineweb_train_000000.bin"]
    assert a["tokenizer.model"] != c["tokenizer.model"]


def test_synth_without_tokenizer_takes_any_uint16_vocab(tmp_path):
    r = invoke("data", "synth", "--out", tmp_path, "--vocab", 8, "--train-tokens", 2_000, "--val-tokens", 500)
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "tokenizer.model").exists()
    assert r.output.strip().splitlines()[-1] == f"DATA_PATH={tmp_path.resolve()} VOCAB_SIZE=8"


def one_error(result, match):
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], lines


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    one_error(invoke("data", "synth", "--out", a_file, "--vocab", 64), "is a file, not a folder")
    one_error(invoke("data", "synth", "--out", a_file / "sub", "--vocab", 64), "which is a file")
    out = tmp_path / "new"
    one_error(invoke("data", "synth", "--out", out, "--vocab", 20, "--tokenizer"), "--vocab 20: a SentencePiece")
    one_error(invoke("data", "synth", "--out", out, "--vocab", 70_000), "--vocab 70000")
    one_error(invoke("data", "synth", "--out", out, "--vocab", 64, "--val-tokens", 0), "--val-tokens must be >= 1")
    assert not out.exists()


def test_foreign_files_are_never_overwritten(tmp_path):
    (tmp_path / "tokenizer.model").write_bytes(b"someone's tokenizer")
    one_error(invoke("data", "synth", "--out", tmp_path, "--vocab", 64, "--tokenizer"), "not written by golfprof")
    assert (tmp_path / "tokenizer.model").read_bytes() == b"someone's tokenizer"
    shards = tmp_path / "fineweb"
    shards.mkdir()
    (shards / "fineweb_train_000000.bin").write_bytes(b"real shard")
    one_error(invoke("data", "synth", "--out", shards, "--vocab", 64), "not written by golfprof")


def test_bad_input_exits_2_as_a_shell_sees_it(tmp_path):
    p = run("data", "synth", "--out", tmp_path / "e", "--vocab", 3, timeout=120)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == ["error: --vocab 3: must be in 4..65536 (uint16 "
                                                                   "shards)"]
    assert not (tmp_path / "e").exists()
