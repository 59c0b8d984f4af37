"""Synthetic shards beside a tokenizer (`first_token`), read by golfprof's loader and by a plain reader of the
fineweb header as the records' scripts read it. (The chain's statistics and reuse: tests/model/test_data.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest

from golfprof.errors import ConfigError
from golfprof.model import synthetic as syn
from golfprof.model.data import TokenStream, check_shards, load_validation, read_shard, shard_paths


def plain_read(path):
    """A shard as a script with no golfprof reads one: 256 little-endian int32 (magic, version, count), then
    that many little-endian uint16 tokens, and nothing after them."""
    header = np.fromfile(path, dtype="<i4", count=256)
    assert header.size == 256 and int(header[0]) == 20240520 and int(header[1]) == 1
    n = int(header[2])
    assert path.stat().st_size == 256 * 4 + 2 * n
    return np.fromfile(path, dtype="<u2", count=n, offset=256 * 4)


def test_first_token_keeps_control_ids_out_of_the_chain(tmp_path):
    out = syn.write_synthetic_dataset(tmp_path, 300, 20_000, 3_000, seed=2, first_token=4)
    train = np.concatenate([plain_read(p) for p in shard_paths(out["train"])])
    ids = set(np.unique(train).tolist())
    assert 1 in ids and not ids & {0, 2, 3} and max(ids) <= 299 and min(ids - {1}) == 4
    assert json.loads((tmp_path / syn.META_FILE).read_text())["first_token"] == 4


def test_default_sets_keep_their_marker(tmp_path):
    """Sets written before first_token existed have no such key: they are reused, not rewritten."""
    syn.write_synthetic_dataset(tmp_path, 64, 2_000, 500)
    assert "first_token" not in json.loads((tmp_path / syn.META_FILE).read_text())


def test_golfprofs_loader_and_a_plain_reader_agree(tmp_path):
    out = syn.write_synthetic_dataset(tmp_path, 1024, 30_000, 5_000, seed=1, shard_tokens=12_000, first_token=4)
    paths = check_shards(out["train"], 1024)
    assert [p.name for p in paths] == ["fineweb_train_000000.bin", "fineweb_train_000001.bin",
                                       "fineweb_train_000002.bin"]
    for p in paths:
        assert np.array_equal(plain_read(p), read_shard(p))
    stream = TokenStream(out["train"], 1024)
    assert np.array_equal(stream.take(30_000), np.concatenate([plain_read(p) for p in paths]))
    val = load_validation(out["val"], 64, vocab_size=1024)
    assert np.array_equal(val.numpy(), plain_read(shard_paths(out["val"])[0])[: val.numel()])


@pytest.mark.parametrize("first", [1, 63])
def test_first_token_bounds(tmp_path, first):
    with pytest.raises(ConfigError, match="first_token"):
        syn.write_synthetic_dataset(tmp_path, 64, 100, 100, first_token=first)
    assert not list(tmp_path.iterdir())
