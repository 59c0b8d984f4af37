"""fineweb `.bin` token shards, the record's sequential token stream, and the distributed loader.

The shard format and the stream semantics follow the record's training script so that runs on
real fineweb shards and on golfprof's synthetic shards consume tokens identically.
"""

from __future__ import annotations

import glob
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from golfprof.errors import ConfigError, ShardError

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPE = np.dtype("<u2")


# --------------------------------------------------------------------------------------------
# Shards


def read_header(path: str | Path) -> int:
    """Validate a shard's header against its size and return its token count.

    Reads only the header so that checking every shard of a large dataset up front stays cheap.
    """
    path = Path(path)
    try:
        actual = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except OSError as e:
        raise ShardError(f"{path}: cannot read shard ({e.strerror or e})") from e
    if len(raw) < HEADER_BYTES:
        raise ShardError(f"{path}: too short for a header ({len(raw)} of {HEADER_BYTES} bytes)")
    header = np.frombuffer(raw, dtype="<i4")
    if header[0] != MAGIC:
        raise ShardError(f"{path}: bad magic {int(header[0])} (expected {MAGIC})")
    if header[1] != VERSION:
        raise ShardError(f"{path}: bad version {int(header[1])} (expected {VERSION})")
    num_tokens = int(header[2])
    expected = HEADER_BYTES + TOKEN_DTYPE.itemsize * num_tokens
    if num_tokens < 0 or actual != expected:
        raise ShardError(
            f"{path}: size mismatch, header says {num_tokens} tokens so expected {expected} bytes, "
            f"found {actual}"
        )
    return num_tokens


def read_shard(path: str | Path) -> np.ndarray:
    """Memory-map a validated shard; the stream only touches the pages it actually consumes."""
    num_tokens = read_header(path)
    if num_tokens == 0:
        return np.empty(0, dtype=TOKEN_DTYPE)
    return np.memmap(path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(num_tokens,))


def load_shard(path: str | Path, vocab_size: int | None = None) -> np.ndarray:
    """A validated shard read whole into memory, as the records' loaders do at each shard switch.

    Training reads every token in order, so reading the file at once costs the same I/O as paging a
    memory map in step by step, and no timed step waits on the file system for its tokens. With
    ``vocab_size`` its ids are checked too (one max over the array).
    """
    tokens = np.array(read_shard(path))
    if vocab_size is not None:
        check_token_ids(path, tokens, vocab_size)
    return tokens


def check_token_ids(path: str | Path, tokens: np.ndarray, vocab_size: int) -> None:
    """An id at or past the vocabulary would index past the embedding deep inside a step (an IndexError
    or a device assert); refuse the shard instead, naming the file and the first bad position."""
    if tokens.size == 0 or int(tokens.max()) < vocab_size:
        return
    first = int(np.argmax(tokens >= vocab_size))
    raise ShardError(f"{path}: token id {int(tokens[first])} at position {first} (byte "
                     f"{HEADER_BYTES + first * TOKEN_DTYPE.itemsize}) is outside the vocabulary of {vocab_size}")


def write_shard(path: str | Path, tokens: np.ndarray) -> None:
    """Write a shard atomically, so a crashed writer never leaves a half shard that reads as valid."""
    path = Path(path)
    tokens = np.asarray(tokens).ravel()
    if tokens.size and not np.issubdtype(tokens.dtype, np.integer):
        raise ShardError(f"{path}: tokens must be integers, got dtype {tokens.dtype}")
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) > np.iinfo(TOKEN_DTYPE).max):
        raise ShardError(
            f"{path}: token ids {int(tokens.min())}..{int(tokens.max())} do not fit uint16"
        )
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = (MAGIC, VERSION, tokens.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header.tobytes())
            f.write(tokens.astype(TOKEN_DTYPE, copy=False).tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def shard_paths(pattern: str | Path) -> list[Path]:
    """Sorted shards for a glob or a directory; sorted order is the order the record trains on."""
    pattern = str(pattern)
    if os.path.isdir(pattern):
        paths = sorted(Path(pattern).glob("*.bin"))
    else:
        paths = sorted(Path(p) for p in glob.glob(pattern))
    if not paths:
        raise ShardError(f"no files match {pattern}")
    return paths


def check_shards(pattern: str | Path, vocab_size: int) -> list[Path]:
    """Before any process starts: every shard's header (cheap), and the ids of the first shard, the one a run
    loads at once; each later shard's ids are checked as the stream loads it."""
    paths = shard_paths(pattern)
    sizes = [read_header(p) for p in paths]
    if sum(sizes) == 0:
        raise ShardError(f"{pattern}: all {len(paths)} shard(s) are empty")
    first = next(p for p, n in zip(paths, sizes) if n)
    check_token_ids(first, read_shard(first), vocab_size)
    return paths


# --------------------------------------------------------------------------------------------
# Streams and loaders


class TokenStream:
    """Reads shards in sorted order and wraps to the first one, as the record's loader does."""

    def __init__(self, pattern: str | Path, vocab_size: int | None = None) -> None:
        self.vocab_size = vocab_size  # ids are checked as each shard is loaded
        self.paths = shard_paths(pattern)
        # Checking every header now turns a bad shard hours into a run into an error at start-up.
        self.sizes = [read_header(p) for p in self.paths]
        if sum(self.sizes) == 0:
            raise ShardError(f"{pattern}: all {len(self.paths)} shard(s) are empty")
        self._shard = 0
        self._pos = 0
        self._tokens = load_shard(self.paths[0], vocab_size)

    def take(self, n: int) -> np.ndarray:
        """Exactly n tokens (uint16), continuing into the next shards as needed."""
        if n < 0:
            raise ValueError(f"cannot take {n} tokens")
        chunks = []
        remaining = n
        while remaining:
            avail = len(self._tokens) - self._pos
            if avail == 0:
                self._open((self._shard + 1) % len(self.paths), 0)
                continue
            k = min(remaining, avail)
            chunks.append(self._tokens[self._pos : self._pos + k])
            self._pos += k
            remaining -= k
        if not chunks:
            return np.empty(0, dtype=TOKEN_DTYPE)
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    def peek(self, n: int) -> np.ndarray:
        """The next n tokens without consuming them (the loader's one-token overlap).

        Read in place: a peek across a shard boundary memory-maps the next shard's first tokens, where
        take-then-rewind would load the next shard whole and then the current one again, two full-shard
        reads inside one timed step's data phase.
        """
        out, shard, pos, tokens = [], self._shard, self._pos, self._tokens
        while n > 0:
            if pos == len(tokens):
                shard, pos = (shard + 1) % len(self.paths), 0
                tokens = read_shard(self.paths[shard])
                continue
            k = min(n, len(tokens) - pos)
            out.append(np.asarray(tokens[pos : pos + k]))
            pos, n = pos + k, n - k
        return np.concatenate(out) if out else np.empty(0, dtype=TOKEN_DTYPE)

    def state_dict(self) -> dict[str, int]:
        return {"shard": self._shard, "pos": self._pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        shard, pos = int(state["shard"]), int(state["pos"])
        if not 0 <= shard < len(self.paths) or not 0 <= pos <= self.sizes[shard]:
            raise ConfigError(f"stream position {state} is outside the {len(self.paths)} shard(s)")
        self._open(shard, pos)

    def _open(self, shard: int, pos: int) -> None:
        if shard != self._shard:
            self._tokens = load_shard(self.paths[shard], self.vocab_size)
        self._shard, self._pos = shard, pos


class DistributedLoader:
    """Each rank's micro-batches of one optimizer step, cut from one global chunk.

    Micro-batch j = m * world_size + rank of the chunk goes to `rank` at micro-step m, so any
    world size with the same global batch sees the same tokens: a single process with
    grad_accum * world_size micro-steps reproduces the union of all ranks' batches, in order j.
    """

    def __init__(
        self,
        pattern: str | Path,
        seq_len: int,
        micro_batch_seqs: int,
        grad_accum: int,
        world_size: int = 1,
        rank: int = 0,
        vocab_size: int | None = None,
    ) -> None:
        for name, value in (
            ("seq_len", seq_len),
            ("micro_batch_seqs", micro_batch_seqs),
            ("grad_accum", grad_accum),
            ("world_size", world_size),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world size {world_size}")
        self.seq_len = seq_len
        self.micro_batch_seqs = micro_batch_seqs
        self.grad_accum = grad_accum
        self.world_size = world_size
        self.rank = rank
        self.micro_tokens = micro_batch_seqs * seq_len
        self.tokens_per_step = world_size * grad_accum * self.micro_tokens
        self.stream = TokenStream(pattern, vocab_size)

    @property
    def span_shape(self) -> tuple[int, int]:
        """(grad_accum, micro_tokens + 1): this rank's tokens of one step, each micro-batch's x and y overlapping."""
        return self.grad_accum, self.micro_tokens + 1

    def next_spans(self, out: np.ndarray | None = None) -> np.ndarray:
        """This rank's spans of one step as stored (uint16), into ``out`` (a reused buffer) when given.

        Span m is micro-batch j = m * world_size + rank of the step's global chunk plus the token after it:
        x = span[:-1], y = span[1:]. The +1 token of the last micro-batch is the next chunk's first input,
        so it is peeked, not consumed.
        """
        chunk = self.stream.take(self.tokens_per_step)
        chunk = np.concatenate([chunk, self.stream.peek(1)])
        if out is None:
            out = np.empty(self.span_shape, dtype=chunk.dtype)
        for m in range(self.grad_accum):
            start = (m * self.world_size + self.rank) * self.micro_tokens
            out[m] = chunk[start : start + self.micro_tokens + 1]
        return out

    def next_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's grad_accum (x, y) pairs, int64 (micro_batch_seqs, seq_len), y = x shifted.

        The record's loader (``--loader record``): widened to int64 on the CPU, in the caller's thread, and
        not pinned, so the caller's ``non_blocking`` copy is a synchronous one, as in the record's script.
        """
        spans = torch.from_numpy(self.next_spans().astype(np.int64))
        return [split_span(span, self.micro_batch_seqs, self.seq_len) for span in spans]

    def state_dict(self) -> dict[str, Any]:
        return {"stream": self.stream.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rewind, e.g. after untimed compile warm-up steps, so timed steps see the record's tokens."""
        self.stream.load_state_dict(state["stream"])


def split_span(span: torch.Tensor, seqs: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) views of one micro-batch's span of seqs * seq_len + 1 tokens: y is x shifted by one."""
    return span[:-1].view(seqs, seq_len), span[1:].view(seqs, seq_len)


def load_validation(pattern: str | Path, seq_len: int, max_tokens: int | None = None,
                    vocab_size: int | None = None) -> torch.Tensor:
    """The first max_tokens val tokens (all if None), trimmed to k * seq_len + 1 for k sequences."""
    paths = shard_paths(pattern)
    sizes = [read_header(p) for p in paths]
    total = sum(sizes) if max_tokens is None else min(sum(sizes), max_tokens)
    if total < seq_len + 1:
        raise ShardError(
            f"{pattern}: {total} validation tokens, need at least seq_len + 1 = {seq_len + 1}"
        )
    usable = (total - 1) // seq_len * seq_len + 1
    parts, remaining = [], usable
    for path, size in zip(paths, sizes):
        if remaining == 0:
            break
        k = min(size, remaining)
        part = read_shard(path)[:k]
        if vocab_size is not None:
            check_token_ids(path, part, vocab_size)
        parts.append(part.astype(np.int64))
        remaining -= k
    return torch.from_numpy(np.concatenate(parts))


# --------------------------------------------------------------------------------------------
# Bits per byte


class PieceProcessor(Protocol):
    """The part of sentencepiece.SentencePieceProcessor the byte tables need."""

    def get_piece_size(self) -> int: ...
    def id_to_piece(self, i: int) -> str: ...
    def is_control(self, i: int) -> bool: ...
    def is_unknown(self, i: int) -> bool: ...
    def is_unused(self, i: int) -> bool: ...
    def is_byte(self, i: int) -> bool: ...


ByteLuts = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def build_byte_luts_from_processor(sp: PieceProcessor, vocab_size: int) -> ByteLuts:
    """(base_bytes, has_leading_space, is_boundary) per token id, the record's val_bpb rules.

    Ids beyond the tokenizer (a padded vocab) count as boundaries with no bytes.
    """
    sp_size = int(sp.get_piece_size())
    size = max(sp_size, vocab_size)
    base = np.zeros(size, dtype=np.int16)
    space = np.zeros(size, dtype=np.bool_)
    boundary = np.ones(size, dtype=np.bool_)
    for i in range(sp_size):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        boundary[i] = False
        if sp.is_byte(i):
            base[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith("\u2581"):
            space[i] = True
            piece = piece[1:]
        base[i] = len(piece.encode("utf-8"))
    return torch.from_numpy(base), torch.from_numpy(space), torch.from_numpy(boundary)


def build_byte_luts(sp_model_path: str | Path, vocab_size: int) -> ByteLuts:
    """Byte tables from a sentencepiece model; the package is only needed when val_bpb is asked."""
    try:
        import sentencepiece as spm
    except ImportError as e:
        raise ConfigError("val_bpb needs the sentencepiece package: pip install sentencepiece") from e
    if not Path(sp_model_path).is_file():
        raise ConfigError(f"{sp_model_path}: sentencepiece model not found")
    sp = spm.SentencePieceProcessor(model_file=str(sp_model_path))
    return build_byte_luts_from_processor(sp, vocab_size)


def target_byte_count(prev: torch.Tensor, tgt: torch.Tensor, luts: ByteLuts) -> int:
    """UTF-8 bytes the targets decode to; a leading space counts unless it follows a boundary."""
    base, space, boundary = luts
    prev, tgt = prev.reshape(-1).cpu(), tgt.reshape(-1).cpu()
    counts = base[tgt].to(torch.int64) + (space[tgt] & ~boundary[prev]).to(torch.int64)
    return int(counts.sum())


def bits_per_token(nll_sum_nats: float, n_tokens: int) -> float:
    if n_tokens <= 0:
        raise ValueError(f"n_tokens must be > 0, got {n_tokens}")
    return nll_sum_nats / n_tokens / math.log(2)


def bits_per_byte(nll_sum_nats: float, n_tokens: int, n_bytes: int) -> float:
    """Tokenizer-independent loss: bits per token times tokens per byte."""
    if n_bytes <= 0:
        raise ValueError(f"n_bytes must be > 0, got {n_bytes}")
    return bits_per_token(nll_sum_nats, n_tokens) * n_tokens / n_bytes
