"""A SentencePiece tokenizer of exactly V pieces, trained offline on seeded synthetic text.

The records' scripts refuse to start without one: they load `TOKENIZER_PATH` with sentencepiece, require
`vocab_size() == VOCAB_SIZE`, and build val_bpb's byte tables from `id_to_piece`, `is_control`,
`is_unknown`, `is_unused` and `is_byte`, a leading "▁" counting as a space byte (the varlen records also
assert that "▁" is a piece of its own). This model has what those calls read: a BPE model with the special
ids of the records' own tokenizer trainer (pad 0, bos 1, eos 2, unk 3), byte-fallback pieces <0x00>..<0xFF>
from BYTE_FALLBACK_VOCAB pieces up (as theirs have), and merges of a seeded lexicon of syllable words up to
exactly V pieces. Same vocab and seed, same bytes.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from golfprof.errors import ConfigError

CONSONANTS = "bcdfghjklmnprstvwz"
VOWELS = "aeiou"
SENTENCE_END = "."
SPECIAL_IDS = {"pad_id": 0, "bos_id": 1, "eos_id": 2, "unk_id": 3}  # the records' trainer's ids
FIRST_PIECE = 4  # the first id that is a piece of text (bytes or letters), not a control or unknown id
BYTE_FALLBACK_VOCAB = 512  # from here up the 256 byte pieces are included, leaving room for merges
SPACE = "\u2581"  # SentencePiece's whitespace symbol
# every id below FIRST_PIECE, every letter, the sentence end and the space symbol need a piece of their own
MIN_VOCAB = FIRST_PIECE + len(CONSONANTS) + len(VOWELS) + len(SENTENCE_END) + 1
MAX_VOCAB = 65536  # uint16 shards
WORDS_PER_PIECE = 30  # training text size: enough distinct merges for any V up to MAX_VOCAB
LEXICON_PER_PIECE = 4


def synthetic_text(vocab_size: int, seed: int = 0) -> list[str]:
    """Seeded sentences of lowercase syllable words (Zipf-distributed), the tokenizer's training text."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    size = max(LEXICON_PER_PIECE * vocab_size, 2000)
    lexicon: dict[str, None] = {}
    while len(lexicon) < size:
        n = size - len(lexicon)
        syllables = rng.integers(1, 5, size=n)
        cons = rng.integers(0, len(CONSONANTS), size=(n, 4))
        vows = rng.integers(0, len(VOWELS), size=(n, 4))
        for i in range(n):
            lexicon["".join(CONSONANTS[cons[i, j]] + VOWELS[vows[i, j]] for j in range(syllables[i]))] = None
    words = list(lexicon)
    zipf = 1.0 / np.arange(1, len(words) + 1)
    picks = rng.choice(len(words), size=max(WORDS_PER_PIECE * vocab_size, 20000), p=zipf / zipf.sum())
    lengths = rng.integers(4, 20, size=len(picks) // 4 + 1)
    bounds = np.minimum(np.concatenate([[0], np.cumsum(lengths)]), len(picks))
    return [" ".join(words[j] for j in picks[a:b]) + SENTENCE_END for a, b in zip(bounds, bounds[1:]) if b > a]


def check_installed() -> None:
    """The sentencepiece package (the `data` extra), checked without importing it."""
    import importlib.util

    if importlib.util.find_spec("sentencepiece") is None:
        raise ConfigError("--tokenizer needs the sentencepiece package: pip install 'golfprof[data]' "
                          "(or pip install sentencepiece)")


def check_vocab(vocab_size: int) -> None:
    if not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise ConfigError(f"--vocab {vocab_size}: a SentencePiece model of the synthetic text needs "
                          f"{MIN_VOCAB}..{MAX_VOCAB} pieces (the special ids, one per character, uint16 shards)")


def train_tokenizer(vocab_size: int, seed: int = 0) -> bytes:
    """The serialized model (a `.model` file's bytes) of exactly `vocab_size` pieces."""
    check_vocab(vocab_size)
    check_installed()
    import sentencepiece as spm

    out = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(synthetic_text(vocab_size, seed)), model_writer=out, model_type="bpe",
            vocab_size=vocab_size, hard_vocab_limit=True, character_coverage=1.0,
            byte_fallback=vocab_size >= BYTE_FALLBACK_VOCAB, split_digits=True,
            normalization_rule_name="nmt_nfkc", add_dummy_prefix=False, num_threads=1, minloglevel=2,
            **SPECIAL_IDS)
    except RuntimeError as e:  # sentencepiece's own refusal, e.g. a vocabulary the text cannot fill
        raise ConfigError(f"--vocab {vocab_size}: sentencepiece could not train: {str(e).strip()[:200]}") from None
    return out.getvalue()


def write_tokenizer(path: str | Path, vocab_size: int, seed: int = 0, model: bytes | None = None) -> dict[str, Any]:
    """Write the model (`model`, or one trained now) atomically: a half-written model never loads. Returns
    `describe(path)`."""
    path = Path(path)
    data = train_tokenizer(vocab_size, seed) if model is None else model
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return describe(path, vocab_size)


def describe(path: str | Path, vocab_size: int | None = None) -> dict[str, Any]:
    """What a record script reads from the model, checked: the piece count and the special, byte and space
    pieces. A model that would not pass their start-up checks is refused here."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(path))
    pieces = int(sp.vocab_size())
    if vocab_size is not None and pieces != vocab_size:
        raise ConfigError(f"{path}: {pieces} pieces, not the {vocab_size} asked for")
    space = sp.piece_to_id(SPACE)
    if space == sp.unk_id():
        raise ConfigError(f"{path}: no {SPACE!r} piece of its own (the varlen records' val_bpb needs one)")
    return {"path": str(path), "pieces": pieces, "space_id": int(space), "bos_id": int(sp.bos_id()),
            "byte_pieces": sum(bool(sp.is_byte(i)) for i in range(pieces)),
            "control_or_unknown": [i for i in range(pieces) if sp.is_control(i) or sp.is_unknown(i)]}
