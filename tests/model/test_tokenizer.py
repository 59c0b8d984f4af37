"""The synthetic SentencePiece tokenizer: exactly V pieces, deterministic, and usable for what the records'
scripts do with theirs (the vocab check, val_bpb's byte tables, the "▁" piece, the special ids)."""

from __future__ import annotations

import pytest
import sentencepiece as spm
import torch

from golfprof.errors import ConfigError
from golfprof.model import synthetic
from golfprof.model import tokenizer as T
from golfprof.model.data import build_byte_luts


def processor(data: bytes) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_proto=data)


@pytest.mark.parametrize("vocab", [T.MIN_VOCAB, 300, T.BYTE_FALLBACK_VOCAB - 1, T.BYTE_FALLBACK_VOCAB, 1024])
def test_exactly_v_pieces(vocab):
    sp = processor(T.train_tokenizer(vocab))
    assert sp.vocab_size() == sp.get_piece_size() == vocab
    assert sum(sp.is_byte(i) for i in range(vocab)) == (256 if vocab >= T.BYTE_FALLBACK_VOCAB else 0)


def test_the_bounds_are_exact():
    for vocab in (T.MIN_VOCAB - 1, T.MAX_VOCAB + 1):
        with pytest.raises(ConfigError, match=f"--vocab {vocab}: .*{T.MIN_VOCAB}..{T.MAX_VOCAB}"):
            T.train_tokenizer(vocab)
    assert processor(T.train_tokenizer(T.MIN_VOCAB)).vocab_size() == T.MIN_VOCAB  # no merges, every character


def test_same_seed_same_bytes_other_seed_other_model():
    assert T.train_tokenizer(400, seed=5) == T.train_tokenizer(400, seed=5)
    assert T.train_tokenizer(400, seed=5) != T.train_tokenizer(400, seed=6)
    assert T.synthetic_text(400, 5) == T.synthetic_text(400, 5)


def test_special_ids_match_the_records_tokenizers_and_the_shards_bos():
    sp = processor(T.train_tokenizer(600))
    assert (sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id()) == (0, 1, 2, 3)
    assert sp.bos_id() == synthetic.BOS  # the varlen records split documents at id 1
    assert [i for i in range(600) if sp.is_control(i) or sp.is_unknown(i)] == [0, 1, 2, 3]
    assert T.FIRST_PIECE == 4 and sp.is_byte(T.FIRST_PIECE)


def test_what_val_bpb_reads_is_there(tmp_path):
    """The byte tables the records build at start-up: every id from FIRST_PIECE up but "▁" decodes to >= 1
    byte, "▁" is its own piece, and text round-trips."""
    info = T.write_tokenizer(tmp_path / "tokenizer.model", 1024, seed=1)
    sp = spm.SentencePieceProcessor(model_file=info["path"])
    assert info["pieces"] == 1024 and info["byte_pieces"] == 256 and info["control_or_unknown"] == [0, 1, 2, 3]
    assert sp.piece_to_id(T.SPACE) == info["space_id"] != sp.unk_id()
    base, space, boundary = build_byte_luts(info["path"], 1024)
    assert boundary[:4].all() and not boundary[4:].any()
    sid = info["space_id"]
    assert base[sid] == 0 and space[sid]  # "▁" alone: no bytes of its own, one space byte after a non-boundary
    assert all(base[i] >= 1 for i in range(4, 1024) if i != sid) and base[:4].eq(0).all()
    assert space.sum() > 100  # many "▁word" merges: spaces are counted
    text = T.synthetic_text(1024, 9)[:50]
    for s in text:
        assert sp.decode(sp.encode(s)) == s
    ids = torch.tensor(sp.encode(" ".join(text)))
    counted = base[ids].sum() + (space[ids[1:]] & ~boundary[ids[:-1]]).sum() + int(space[ids[0]])
    assert counted == len(" ".join(text).encode())  # the records' rule counts the text's bytes exactly


def test_describe_refuses_a_model_of_another_size(tmp_path):
    path = tmp_path / "t.model"
    T.write_tokenizer(path, 100)
    with pytest.raises(ConfigError, match="100 pieces, not the 101"):
        T.describe(path, 101)


def test_without_sentencepiece_the_refusal_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sentencepiece" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'golfprof\[data\]'"):
        T.train_tokenizer(300)
