"""Shards, the token stream, the distributed loader, validation tokens, synthetic data, val_bpb."""

from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from golfprof.model.config import ConfigError
from golfprof.model.data import (
    HEADER_BYTES,
    MAGIC,
    DistributedLoader,
    ShardError,
    TokenStream,
    bits_per_byte,
    bits_per_token,
    build_byte_luts,
    build_byte_luts_from_processor,
    load_validation,
    read_shard,
    shard_paths,
    target_byte_count,
    write_shard,
)
from golfprof.model.synthetic import write_synthetic_dataset


def _write_split(dir_: Path, prefix: str, sizes: list[int]) -> np.ndarray:
    """Shards holding consecutive ids, so every token says where in the stream it came from."""
    tokens = np.arange(sum(sizes), dtype=np.int64) % 65536
    start = 0
    for i, n in enumerate(sizes):
        write_shard(dir_ / f"{prefix}_{i:06d}.bin", tokens[start : start + n])
        start += n
    return tokens


# --------------------------------------------------------------------------------------------
# Shards


def test_round_trip(tmp_path: Path) -> None:
    tokens = np.array([0, 1, 2, 65535, 1234], dtype=np.int32)
    path = tmp_path / "a.bin"
    write_shard(path, tokens)
    assert path.stat().st_size == HEADER_BYTES + 2 * len(tokens)
    out = read_shard(path)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, tokens)
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_write_rejects_tokens_outside_uint16(tmp_path: Path) -> None:
    with pytest.raises(ShardError, match="do not fit uint16"):
        write_shard(tmp_path / "a.bin", np.array([0, 65536]))
    with pytest.raises(ShardError):
        write_shard(tmp_path / "b.bin", np.array([-1, 3]))
    assert not list(tmp_path.iterdir())


def _header(magic: int = MAGIC, version: int = 1, n: int = 4) -> bytes:
    header = np.zeros(256, dtype="<i4")
    header[:3] = (magic, version, n)
    return header.tobytes()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (_header(magic=1234) + b"\0" * 8, "bad magic 1234"),
        (_header(version=2) + b"\0" * 8, "bad version 2"),
        (_header(n=4) + b"\0" * 6, "expected 1032 bytes, found 1030"),
        (_header()[:100], "too short for a header"),
    ],
)
def test_bad_shards_raise_one_line_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "fineweb_train_000000.bin"
    path.write_bytes(content)
    for read in (read_shard, TokenStream):
        with pytest.raises(ShardError) as info:
            read(path)
        text = str(info.value)
        assert "\n" not in text and path.name in text and message in text
        assert isinstance(info.value, ConfigError)


def test_empty_glob(tmp_path: Path) -> None:
    pattern = str(tmp_path / "nothing_*.bin")
    with pytest.raises(ShardError) as info:
        shard_paths(pattern)
    assert str(info.value) == f"no files match {pattern}"


def test_shard_paths_sorted_from_dir_or_glob(tmp_path: Path) -> None:
    for name in ("b_1.bin", "a_2.bin", "b_0.bin", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in shard_paths(tmp_path)] == ["a_2.bin", "b_0.bin", "b_1.bin"]
    assert [p.name for p in shard_paths(str(tmp_path / "b_*.bin"))] == ["b_0.bin", "b_1.bin"]


# --------------------------------------------------------------------------------------------
# Stream and loader


def test_stream_spans_and_wraps_shards(tmp_path: Path) -> None:
    tokens = _write_split(tmp_path, "s", [10, 0, 5])
    stream = TokenStream(tmp_path / "s_*.bin")
    got = np.concatenate([stream.take(7) for _ in range(5)])
    np.testing.assert_array_equal(got, np.resize(tokens, 35))
    assert len(stream.take(0)) == 0


def test_stream_checks_every_header_up_front(tmp_path: Path) -> None:
    _write_split(tmp_path, "s", [10])
    bad = tmp_path / "s_000001.bin"
    bad.write_bytes(_header(magic=7))
    with pytest.raises(ShardError, match="s_000001.bin: bad magic 7"):
        TokenStream(tmp_path / "s_*.bin")


def _loaders(pattern: Path, world: int, total_micro: int, **kw: int) -> list[DistributedLoader]:
    return [
        DistributedLoader(pattern, grad_accum=total_micro // world, world_size=world, rank=r, **kw)
        for r in range(world)
    ]


def test_rank_split_matches_single_process(tmp_path: Path) -> None:
    tokens = _write_split(tmp_path, "s", [100, 37, 211, 50])  # chunks straddle shard edges
    pattern = tmp_path / "s_*.bin"
    B, T, micro = 2, 4, 6
    N = micro * B * T
    (single,) = _loaders(pattern, 1, micro, seq_len=T, micro_batch_seqs=B)
    split = {w: _loaders(pattern, w, micro, seq_len=T, micro_batch_seqs=B) for w in (2, 3)}
    for step in range(3):
        reference = single.next_batches()
        for j, (x, y) in enumerate(reference):
            assert x.dtype == y.dtype == torch.int64 and x.shape == (B, T)
            start = (step * N + j * B * T) % len(tokens)
            span = torch.from_numpy(np.resize(np.roll(tokens, -start), B * T + 1))
            torch.testing.assert_close(x, span[:-1].view(B, T))
            torch.testing.assert_close(y, span[1:].view(B, T))
        for world, loaders in split.items():
            per_rank = [loader.next_batches() for loader in loaders]
            union = [per_rank[j % world][j // world] for j in range(micro)]
            for (x, y), (rx, ry) in zip(union, reference):
                torch.testing.assert_close(x, rx)
                torch.testing.assert_close(y, ry)


def test_state_dict_rewinds_the_loader(tmp_path: Path) -> None:
    _write_split(tmp_path, "s", [40, 40])
    loader = DistributedLoader(tmp_path, seq_len=8, micro_batch_seqs=1, grad_accum=2)
    start = loader.state_dict()
    first = [loader.next_batches() for _ in range(4)]  # wraps past the end of the data
    loader.load_state_dict(start)
    again = [loader.next_batches() for _ in range(4)]
    for a, b in zip(first, again):
        for (x, y), (x2, y2) in zip(a, b):
            torch.testing.assert_close(x, x2)
            torch.testing.assert_close(y, y2)


def test_loader_rejects_bad_rank(tmp_path: Path) -> None:
    _write_split(tmp_path, "s", [10])
    with pytest.raises(ConfigError, match="rank 2 is outside world size 2"):
        DistributedLoader(tmp_path, seq_len=2, micro_batch_seqs=1, grad_accum=1, world_size=2, rank=2)


def test_validation_trimming(tmp_path: Path) -> None:
    tokens = _write_split(tmp_path, "v", [30, 25])
    pattern = tmp_path / "v_*.bin"
    for max_tokens, expected in ((None, 49), (50, 49), (20, 17), (9, 9)):
        val = load_validation(pattern, seq_len=8, max_tokens=max_tokens)
        assert val.dtype == torch.int64
        torch.testing.assert_close(val, torch.from_numpy(tokens[:expected]))
    with pytest.raises(ShardError, match="need at least seq_len"):
        load_validation(pattern, seq_len=8, max_tokens=8)


# --------------------------------------------------------------------------------------------
# Synthetic data


def _trigram_entropy_bits(x: np.ndarray, vocab: int) -> float:
    """Plug-in estimate of H(next | previous two)."""

    def entropy(keys: np.ndarray) -> float:
        counts = np.unique(keys, return_counts=True)[1]
        p = counts / counts.sum()
        return float(-(p * np.log2(p)).sum())

    x = x.astype(np.int64)
    context = x[:-2] * vocab + x[1:-1]
    return entropy(context * vocab + x[2:]) - entropy(context)


def test_synthetic_is_deterministic_and_learnable(tmp_path: Path) -> None:
    a = write_synthetic_dataset(tmp_path / "a", 64, 120_000, 5_000, seed=3, shard_tokens=50_000)
    b = write_synthetic_dataset(tmp_path / "b", 64, 120_000, 5_000, seed=3, shard_tokens=50_000)
    c = write_synthetic_dataset(tmp_path / "c", 64, 120_000, 5_000, seed=4, shard_tokens=50_000)
    paths_a, paths_b = shard_paths(a["train"]), shard_paths(b["train"])
    assert [p.name for p in paths_a] == [f"fineweb_train_00000{i}.bin" for i in range(3)]
    assert [p.read_bytes() for p in paths_a] == [p.read_bytes() for p in paths_b]
    assert paths_a[0].read_bytes() != shard_paths(c["train"])[0].read_bytes()

    train = np.concatenate([read_shard(p) for p in paths_a])
    val = read_shard(shard_paths(a["val"])[0])
    assert len(train) == 120_000 and len(val) == 5_000
    assert train[0] == val[0] == 1 and train.max() < 64
    assert not np.array_equal(train[:5_000], val)

    entropy = a["entropy_bits_per_token"]
    assert entropy < math.log2(64) - 3
    assert abs(_trigram_entropy_bits(train, 64) - entropy) < 0.1


def test_synthetic_reuses_matching_files(tmp_path: Path) -> None:
    write_synthetic_dataset(tmp_path, 32, 3_000, 1_000, shard_tokens=1_000)
    shard = tmp_path / "fineweb_train_000000.bin"
    mtime = shard.stat().st_mtime_ns
    write_synthetic_dataset(tmp_path, 32, 3_000, 1_000, shard_tokens=1_000)
    assert shard.stat().st_mtime_ns == mtime
    write_synthetic_dataset(tmp_path, 32, 3_000, 1_000)  # one shard now: the old three must go
    assert [p.name for p in shard_paths(tmp_path / "fineweb_train_*.bin")] == [shard.name]


def test_synthetic_never_overwrites_foreign_shards(tmp_path: Path) -> None:
    write_shard(tmp_path / "fineweb_train_000000.bin", np.arange(10))
    with pytest.raises(ConfigError, match="not written by golfprof"):
        write_synthetic_dataset(tmp_path, 32, 100, 100)


@pytest.mark.parametrize("vocab", [3, 65537])
def test_synthetic_vocab_bounds(tmp_path: Path, vocab: int) -> None:
    with pytest.raises(ConfigError, match="4..65536"):
        write_synthetic_dataset(tmp_path, vocab, 100, 100)


def test_synthetic_tiny_vocab_and_speed(tmp_path: Path) -> None:
    small = write_synthetic_dataset(tmp_path / "v4", 4, 1_000, 100)
    assert set(np.unique(read_shard(shard_paths(small["train"])[0]))) <= {1, 2, 3}
    start = time.perf_counter()
    write_synthetic_dataset(tmp_path / "big", 50_304, 2_000_000, 10_000)
    assert time.perf_counter() - start < 2.0


# --------------------------------------------------------------------------------------------
# Bits per byte


class FakeProcessor:
    PIECES = ["<unk>", "<s>", "</s>", "<0x41>", "\u2581the", "\u00e9t\u00e9", "\u2581", "unused"]

    def get_piece_size(self) -> int:
        return len(self.PIECES)

    def id_to_piece(self, i: int) -> str:
        return self.PIECES[i]

    def is_control(self, i: int) -> bool:
        return i in (1, 2)

    def is_unknown(self, i: int) -> bool:
        return i == 0

    def is_unused(self, i: int) -> bool:
        return i == 7

    def is_byte(self, i: int) -> bool:
        return i == 3


def test_byte_luts_follow_the_record_rules() -> None:
    base, space, boundary = build_byte_luts_from_processor(FakeProcessor(), vocab_size=10)
    assert base.dtype == torch.int16 and space.dtype == boundary.dtype == torch.bool
    assert base.tolist() == [0, 0, 0, 1, 3, 5, 0, 0, 0, 0]  # "été" is 5 UTF-8 bytes
    assert space.tolist() == [False] * 4 + [True, False, True] + [False] * 3
    assert boundary.tolist() == [True, True, True, False, False, False, False, True, True, True]


def test_target_byte_count_and_bits_per_byte() -> None:
    luts = build_byte_luts_from_processor(FakeProcessor(), vocab_size=8)
    stream = torch.tensor([1, 4, 4, 5, 3, 6, 2, 4])
    prev, tgt = stream[:-1], stream[1:]
    # "the" after BOS: 3 (space dropped); " the": 4; "été": 5; byte: 1; " ": 1; "</s>": 0; "the": 3
    n_bytes = target_byte_count(prev, tgt, luts)
    assert n_bytes == 3 + 4 + 5 + 1 + 1 + 0 + 3
    nll = 2.5 * math.log(2) * len(tgt)  # 2.5 bits per token
    assert bits_per_token(nll, len(tgt)) == pytest.approx(2.5)
    assert bits_per_byte(nll, len(tgt), n_bytes) == pytest.approx(2.5 * 7 / 17)


def test_byte_luts_need_sentencepiece(tmp_path: Path) -> None:
    if importlib.util.find_spec("sentencepiece") is None:
        with pytest.raises(ConfigError, match="pip install sentencepiece"):
            build_byte_luts(tmp_path / "tok.model", 1024)
    else:
        with pytest.raises(ConfigError, match="not found"):
            build_byte_luts(tmp_path / "tok.model", 1024)
