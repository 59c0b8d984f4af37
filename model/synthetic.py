"""Seeded synthetic fineweb-format shards that a tiny GPT can visibly learn in tens of steps.

The process is an order-2 Markov chain with layered structure, so loss falls in stages:
- unigram: each previous token b has a Zipf-distributed anchor rank, so frequent tokens dominate;
- bigram: the successors of (a, b) lie in a window of SHIFTS + SUCCESSORS ranks after b's anchor;
- trigram: a fixes the window's offset, leaving SUCCESSORS distinct tokens with peaked weights.
Documents start with BOS and end at random (geometric) lengths. Because every state has the same
successor weights over distinct tokens, the entropy rate is known exactly:
Hb(q) + (1 - q) * H(weights) bits/token, the floor a perfect model reaches.

Beside a SentencePiece model (`golfprof data synth --tokenizer`, model/tokenizer.py) the chain starts at
`first_token` = the tokenizer's first text piece, so that every id it emits decodes to bytes and only BOS is
a control id, as in the real shards (val_bpb's byte tables count control and unknown ids as zero bytes).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from golfprof.errors import ConfigError

VERSION = 1
BOS = 1
FIRST_TOKEN = 2  # ids 0 (pad) and 1 (BOS) never come out of the chain (the default; see first_token)
SUCCESSOR_WEIGHTS = (8.0, 4.0, 2.0, 1.0)
SHIFTS = 4
ZIPF_EXPONENT = 1.0
MEAN_DOC_TOKENS = 256
CHAIN_TOKENS = 2048  # parallel chains are this long; their seams are forced BOS tokens
META_FILE = "synthetic.json"
TRAIN_PREFIX = "fineweb_train_"
VAL_PREFIX = "fineweb_val_"
FINEWEB_SHARD_TOKENS = 100_000_000  # tokens per shard of the real fineweb10B sets


class _Chain:
    """The seeded transition structure shared by the train and val splits."""

    def __init__(self, vocab_size: int, seed: int, first_token: int = FIRST_TOKEN) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([seed % 2**64, 0]))  # torch's seeds may be negative
        self.ranks = vocab_size - first_token
        weights = np.asarray(SUCCESSOR_WEIGHTS[: min(len(SUCCESSOR_WEIGHTS), self.ranks)])
        self.probs = weights / weights.sum()
        zipf = 1.0 / np.arange(1, self.ranks + 1) ** ZIPF_EXPONENT
        self.anchor = rng.choice(self.ranks, size=vocab_size, p=zipf / zipf.sum())
        self.shift = rng.integers(0, SHIFTS, size=vocab_size)
        self.token_of_rank = (rng.permutation(self.ranks) + first_token).astype(np.uint16)

    def entropy_bits(self) -> float:
        q = 1.0 / MEAN_DOC_TOKENS
        doc_end = -(q * math.log2(q) + (1 - q) * math.log2(1 - q))
        successor = -float(np.sum(self.probs * np.log2(self.probs)))
        return doc_end + (1 - q) * successor

    def sample(self, n: int, seed_words: list[int]) -> np.ndarray:
        """n tokens from ceil(n / CHAIN_TOKENS) chains run side by side, then laid end to end."""
        rng = np.random.default_rng(np.random.SeedSequence([w % 2**64 for w in seed_words]))
        chains = max(1, -(-n // CHAIN_TOKENS))
        steps = -(-n // chains)
        pick = rng.choice(len(self.probs), size=(steps, chains), p=self.probs)
        is_bos = rng.random((steps, chains)) < 1.0 / MEAN_DOC_TOKENS
        is_bos[0] = True
        out = np.empty((steps, chains), dtype=np.uint16)
        a = np.full(chains, BOS)
        b = np.full(chains, BOS)
        for t in range(steps):
            rank = (self.anchor[b] + self.shift[a] + pick[t]) % self.ranks
            tok = np.where(is_bos[t], BOS, self.token_of_rank[rank])
            out[t] = tok
            a = np.where(is_bos[t], BOS, b)
            b = tok
        return out.T.reshape(-1)[:n]


def write_synthetic_dataset(
    out_dir: str | Path,
    vocab_size: int,
    train_tokens: int,
    val_tokens: int,
    seed: int = 0,
    shard_tokens: int | None = None,
    first_token: int = FIRST_TOKEN,
) -> dict[str, Any]:
    """Write (or reuse) train/val shards; returns their glob patterns and the true entropy rate.

    The chain emits ids first_token..vocab_size-1 and BOS (1).
    """
    from .data import write_shard  # here: model/data.py imports torch, which `golfprof data --help` never needs
    _validate(vocab_size, train_tokens, val_tokens, shard_tokens)
    if not FIRST_TOKEN <= first_token <= vocab_size - 2:
        raise ConfigError(f"synthetic first_token {first_token} must be in {FIRST_TOKEN}..{vocab_size - 2}")
    out_dir = Path(out_dir)
    shard_tokens = shard_tokens or train_tokens
    chain = _Chain(vocab_size, seed, first_token)
    meta = {
        "version": VERSION,
        "vocab_size": vocab_size,
        "train_tokens": train_tokens,
        "val_tokens": val_tokens,
        "seed": seed,
        "shard_tokens": shard_tokens,
        "entropy_bits_per_token": chain.entropy_bits(),
    }
    if first_token != FIRST_TOKEN:  # only then, so that sets written before this field are still reused
        meta["first_token"] = first_token
    train_sizes = [min(shard_tokens, train_tokens - s) for s in range(0, train_tokens, shard_tokens)]
    expected = {_shard(out_dir, TRAIN_PREFIX, i): n for i, n in enumerate(train_sizes)}
    expected[_shard(out_dir, VAL_PREFIX, 0)] = val_tokens
    if not _reusable(out_dir, meta, expected):
        _clear(out_dir)
        for i, path in enumerate(p for p in expected if p.name.startswith(TRAIN_PREFIX)):
            write_shard(path, chain.sample(train_sizes[i], [seed, 1, i]))
        write_shard(_shard(out_dir, VAL_PREFIX, 0), chain.sample(val_tokens, [seed, 2, 0]))
        _write_meta(out_dir, meta)
    return {
        "train": str(out_dir / f"{TRAIN_PREFIX}*.bin"),
        "val": str(out_dir / f"{VAL_PREFIX}*.bin"),
        "entropy_bits_per_token": meta["entropy_bits_per_token"],
    }


def _validate(vocab_size: int, train_tokens: int, val_tokens: int, shard_tokens: int | None) -> None:
    if not 4 <= vocab_size <= 65536:
        raise ConfigError(f"synthetic vocab_size {vocab_size} must be in 4..65536")
    for name, value in (("train_tokens", train_tokens), ("val_tokens", val_tokens)):
        if value < 1:
            raise ConfigError(f"synthetic {name} must be >= 1, got {value}")
    if shard_tokens is not None and shard_tokens < 1:
        raise ConfigError(f"synthetic shard_tokens must be >= 1, got {shard_tokens}")


def _shard(out_dir: Path, prefix: str, index: int) -> Path:
    return out_dir / f"{prefix}{index:06d}.bin"


def _existing_shards(out_dir: Path) -> list[Path]:
    return sorted([*out_dir.glob(f"{TRAIN_PREFIX}*.bin"), *out_dir.glob(f"{VAL_PREFIX}*.bin")])


def _reusable(out_dir: Path, meta: dict[str, Any], expected: dict[Path, int]) -> bool:
    """True when a previous call wrote exactly these shards with these parameters."""
    from .data import read_header
    meta_path = out_dir / META_FILE
    if not meta_path.is_file():
        if _existing_shards(out_dir):
            # Without our marker these may be real fineweb shards: never overwrite them.
            raise ConfigError(f"{out_dir}: holds fineweb shards not written by golfprof; pick another dir")
        return False
    try:
        if json.loads(meta_path.read_text()) != meta:
            return False
        return set(_existing_shards(out_dir)) == set(expected) and all(
            read_header(p) == n for p, n in expected.items()
        )
    except ValueError:  # unreadable marker or a damaged shard: regenerate
        return False


def _clear(out_dir: Path) -> None:
    """Remove a stale synthetic set first, so a smaller shard count leaves no extra shards behind."""
    (out_dir / META_FILE).unlink(missing_ok=True)
    for path in _existing_shards(out_dir):
        path.unlink()


def _write_meta(out_dir: Path, meta: dict[str, Any]) -> None:
    """Written last and atomically: its presence means the shards are complete."""
    tmp = out_dir / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out_dir / META_FILE)
