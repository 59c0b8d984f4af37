"""`golfprof data synth`: a dataset folder that a parameter-golf script reads as it reads fineweb10B.

The records' scripts take `DATA_PATH` (a folder of `fineweb_train_*.bin` / `fineweb_val_*.bin`),
`TOKENIZER_PATH` (a SentencePiece model) and `VOCAB_SIZE`. This command writes the shards (model/synthetic.py:
a seeded Markov chain a model can learn, in the fineweb header format of model/data.py) and, with
`--tokenizer`, `tokenizer.model` of exactly V pieces (model/tokenizer.py), so that such a script runs on a
machine with no dataset. Bad input is refused before any file is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from golfprof.errors import ConfigError

from . import synthetic as syn
from . import tokenizer as tok

TOKENIZER_FILE = "tokenizer.model"
DEFAULT_TRAIN_TOKENS = 1 << 24  # 16.8M: 21 of the records' 786,432-token steps before the stream wraps
DEFAULT_VAL_TOKENS = 1 << 20

data_app = typer.Typer(no_args_is_help=True, help="Data for trainers: synthetic fineweb-format shards and tokenizer.")


def check_out_dir(out: Path) -> None:
    """Refuse a path that is, or lies under, a file (mkdir would fail after the checks)."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == out else f"is under {probe}, which is a file"
        raise ConfigError(f"--out {out} {where}, not a folder")


def check_request(out: Path, vocab: int, train_tokens: int, val_tokens: int, shard_tokens: int,
                  tokenizer: bool) -> None:
    """Everything `synth` would refuse, refused before it writes anything."""
    check_out_dir(out)
    if tokenizer:
        tok.check_vocab(vocab)
        tok.check_installed()
    elif not 4 <= vocab <= tok.MAX_VOCAB:
        raise ConfigError(f"--vocab {vocab}: must be in 4..{tok.MAX_VOCAB} (uint16 shards)")
    for flag, value in (("--train-tokens", train_tokens), ("--val-tokens", val_tokens),
                        ("--shard-tokens", shard_tokens)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    model = out / TOKENIZER_FILE
    if tokenizer and model.exists() and not (out / syn.META_FILE).is_file():
        raise ConfigError(f"{model} exists and was not written by golfprof; pick another --out")


def synth(out: Path, vocab: int, train_tokens: int = DEFAULT_TRAIN_TOKENS, val_tokens: int = DEFAULT_VAL_TOKENS,
          shard_tokens: int = syn.FINEWEB_SHARD_TOKENS, tokenizer: bool = False, seed: int = 0) -> dict[str, object]:
    """Write the folder; returns what a script is to be told (the environment) and what was written."""
    out = Path(out)
    check_request(out, vocab, train_tokens, val_tokens, shard_tokens, tokenizer)
    model = tok.train_tokenizer(vocab, seed) if tokenizer else None  # before any file: its refusal writes nothing
    first = tok.FIRST_PIECE if tokenizer else syn.FIRST_TOKEN
    written = syn.write_synthetic_dataset(out, vocab, train_tokens, val_tokens, seed=seed,
                                          shard_tokens=min(shard_tokens, train_tokens), first_token=first)
    result: dict[str, object] = {"shards": written}
    env = {"DATA_PATH": str(out.resolve())}
    if model is not None:
        result["tokenizer"] = tok.write_tokenizer(out / TOKENIZER_FILE, vocab, seed, model=model)
        env["TOKENIZER_PATH"] = str((out / TOKENIZER_FILE).resolve())
    result["env"] = env | {"VOCAB_SIZE": str(vocab)}
    return result


@data_app.command("synth")
def synth_cmd(
    out: Annotated[Path, typer.Option(help="Folder to write fineweb_train_*.bin, fineweb_val_*.bin (and "
                                           f"{TOKENIZER_FILE}) into.")],
    vocab: Annotated[int, typer.Option(help="Vocabulary size V: token ids 0..V-1, and the tokenizer's pieces.")],
    train_tokens: Annotated[int, typer.Option(help="Training tokens in all.")] = DEFAULT_TRAIN_TOKENS,
    val_tokens: Annotated[int, typer.Option(help="Validation tokens (one shard).")] = DEFAULT_VAL_TOKENS,
    shard_tokens: Annotated[int, typer.Option(
        help="Tokens per training shard (fineweb10B's: 100M). The varlen records' loader needs each shard to "
             "hold one global batch (TRAIN_BATCH_TOKENS plus one token per rank).")] = syn.FINEWEB_SHARD_TOKENS,
    tokenizer: Annotated[bool, typer.Option(
        "--tokenizer", help=f"Also train {TOKENIZER_FILE}: SentencePiece BPE of exactly V pieces, offline, "
                            f"on synthetic text (V >= {tok.MIN_VOCAB}).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the token chain and of the tokenizer's text.",
                                      min=0, max=2**32 - 1)] = 0,
) -> None:
    """Synthetic fineweb-format shards (and a SentencePiece tokenizer) that a parameter-golf train_gpt.py
    reads through DATA_PATH, TOKENIZER_PATH and VOCAB_SIZE: no dataset, no network."""
    result = synth(out, vocab, train_tokens, val_tokens, shard_tokens, tokenizer, seed)
    shards = result["shards"]
    print(f"train: {shards['train']}")
    print(f"val:   {shards['val']}")
    if tokenizer:
        t = result["tokenizer"]
        print(f"tokenizer: {t['path']} ({t['pieces']} pieces, {t['byte_pieces']} byte pieces)")
    print(f"entropy floor: {shards['entropy_bits_per_token']:.4f} bits/token")
    print(" ".join(f"{k}={v}" for k, v in result["env"].items()))
