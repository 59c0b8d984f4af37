"""Model, training and systems-toggle configuration, with the `full` and `tiny` presets.

Every dimension is a field so that the `tiny` preset keeps the exact structure of the record
while running on a CPU in well under a second per step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_type_hints

from golfprof.errors import ConfigError  # noqa: F401 - model code raises it under this name

BF16_PART = Literal["embeddings", "weights", "momentum", "rotary"]
BF16_PARTS: tuple[str, ...] = get_args(BF16_PART)


def option(default: Any, help: str, *, flag: str | None = None, type: type | None = None,
           min: float | None = None, max: float | None = None) -> Any:
    """A field the CLI offers as ``--<field-name>`` (or ``flag``), declared once: default, help, choices, range.

    ``help`` may name ``{choices}``: the values of the field's ``Literal`` type. ``type`` is the CLI's
    type where it differs from the stored one (paths are stored as text). ``min``/``max`` bound a number
    (inclusive); :func:`check_ranges` refuses a value outside them when the dataclass is made, so a bad
    number is an error before any folder or process exists. Fields made without ``option`` are not
    command-line options. golfprof/options.py turns these into typer options.
    """
    return field(default=default, metadata={"help": help, "flag": flag, "type": type, "min": min, "max": max})


# What torch.manual_seed accepts: a signed or unsigned 64-bit integer.
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1


def flag_of(f: dataclasses.Field) -> str:
    """The command-line spelling of a field: its declared flag, else ``--field-name``."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def check_ranges(obj: Any) -> None:
    """Every number of a config dataclass within the ``min``/``max`` its field declares (None: not set)."""
    for f in dataclasses.fields(obj):
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        value = getattr(obj, f.name)
        if (lo is None and hi is None) or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{flag_of(f)} {value!r}: expected a number")
        if value != value or (lo is not None and value < lo) or (hi is not None and value > hi):
            bound = (f"between {lo} and {hi}" if lo is not None and hi is not None
                     else f">= {lo}" if lo is not None else f"<= {hi}")
            raise ConfigError(f"{flag_of(f)} {value}: must be {bound}")


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 1024
    num_layers: int = 11
    model_dim: int = 512
    num_heads: int = 8
    num_kv_heads: int = 4
    mlp_mult: int = 3
    mlp_act: Literal["leaky_relu2", "relu2"] = "leaky_relu2"
    leaky_slope: float = 0.5
    rope_dims: int = 16
    rope_base: float = 10000.0
    # The record builds its rotary table for 1024 tokens, so at 2048 the NTK rescale is active.
    rope_train_seq_len: int = 1024
    xsa_last_n: int = 4
    bigram_buckets: int = 2048
    bigram_dim: int = 128
    ve_dim: int = 128
    ve_layers: tuple[int, ...] = (9, 10)
    logit_softcap: float = 30.0
    qk_gain_init: float = 1.5
    tok_emb_std: float = 0.005
    # dtype of the embedding tables when the `embeddings` cast is on (#393 used fp16)
    embedding_dtype: Literal["bfloat16", "float16"] = "bfloat16"

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def mlp_dim(self) -> int:
        return self.mlp_mult * self.model_dim

    @property
    def num_encoder_layers(self) -> int:
        return self.num_layers // 2

    @property
    def num_skip_weights(self) -> int:
        return min(self.num_encoder_layers, self.num_layers - self.num_encoder_layers)

    def bank_shapes(self) -> dict[str, tuple[int, int, int]]:
        """The four parameter banks, in declaration order."""
        L, d = self.num_layers, self.model_dim
        return {
            "qo_bank": (2 * L, d, d),
            "kv_bank": (2 * L, self.kv_dim, d),
            "mlp_up_bank": (L, self.mlp_dim, d),
            "mlp_down_bank": (L, d, self.mlp_dim),
        }

    def validate(self) -> None:
        if self.model_dim % self.num_heads:
            raise ConfigError(f"model_dim {self.model_dim} is not divisible by num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        if self.rope_dims % 2 or self.rope_dims > self.head_dim:
            raise ConfigError(f"rope_dims {self.rope_dims} must be even and at most head_dim {self.head_dim}")
        validate_choices(self)
        bad = [i for i in self.ve_layers if not 0 <= i < self.num_layers]
        if bad:
            raise ConfigError(f"ve_layers {bad} are outside 0..{self.num_layers - 1}")


@dataclass(frozen=True)
class TrainConfig:
    tokens_per_step: int = option(786_432, "Global tokens per optimizer step.", min=1)
    micro_batch_seqs: int = option(48, "Sequences per micro-batch per rank.", min=1)
    seq_len: int = option(2048, "Sequence length.", min=1)
    steps: int = option(50, "Optimizer steps (default: the preset's).", min=1)
    warmdown_steps: int = 3500
    muon_lr: float = 0.025
    muon_momentum: float = 0.99
    muon_momentum_start: float = 0.92
    muon_momentum_warmup_steps: int = 1500
    muon_wd: float = 0.04
    muon_ns_steps: int = 5
    tok_lr: float = 0.035
    scalar_lr: float = 0.025
    adam_wd: float = 0.04
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip: float = 0.3
    ema_decay: float = 0.997
    seed: int = option(1337, "Seed for weights and synthetic data.", min=SEED_MIN, max=SEED_MAX)
    val_tokens: int = 65_536

    def __post_init__(self) -> None:
        check_ranges(self)

    def seqs_per_step(self) -> int:
        if self.tokens_per_step % self.seq_len:
            raise ConfigError(
                f"tokens_per_step {self.tokens_per_step} is not a multiple of seq_len {self.seq_len}"
            )
        return self.tokens_per_step // self.seq_len

    def fitted_micro_batch(self, world_size: int) -> int:
        """The largest micro-batch <= micro_batch_seqs that divides each rank's share (for sweeps)."""
        per_rank = self.seqs_per_step() // world_size
        if per_rank < 1:
            raise ConfigError(f"tokens_per_step {self.tokens_per_step} is {self.seqs_per_step()} sequence(s) of "
                              f"{self.seq_len} tokens, fewer than the world size {world_size}")
        return max(d for d in range(1, min(self.micro_batch_seqs, per_rank) + 1) if per_rank % d == 0)

    def grad_accum(self, world_size: int) -> int:
        """Micro-steps per rank; the global batch must split evenly over ranks and micro-batches."""
        seqs = self.seqs_per_step()
        per_rank, rem = divmod(seqs, world_size)
        if rem:
            raise ConfigError(
                f"the global batch of {seqs} sequences does not divide over world size {world_size}"
            )
        accum, rem = divmod(per_rank, self.micro_batch_seqs)
        if rem or accum == 0:
            fits = [d for d in range(1, min(self.micro_batch_seqs, per_rank) + 1) if per_rank % d == 0]
            raise ConfigError(
                f"{per_rank} sequences per rank do not split into micro-batches of {self.micro_batch_seqs}: "
                f"use --micro-batch-seqs {fits[-1]} (or another divisor of {per_rank})"
            )
        return accum


@dataclass(frozen=True)
class Toggles:
    """The systems choices golfprof ablates; a variant is a named set of these.

    Each field is declared once, here: its type (a ``Literal`` lists the choices), default and help.
    The CLI's options, their validation and the variant table are generated from these fields.
    """

    layout: Literal["banked", "unbanked"] = option("banked", "Weight layout: {choices}.")
    comm: Literal["explicit", "ddp", "packed", "vectorized"] = option(
        "explicit", "Distributed schedule: {choices}.")
    # torch.compile under DDP: dynamo's DDPOptimizer splits the compiled graph at DDP's buckets (torch's default)
    ddp_graph: Literal["split", "whole"] = option(
        "split", "Compiled graph under --comm ddp: {choices} (split: dynamo's DDPOptimizer, torch's default, compiles "
        "one graph per DDP bucket so that a bucket's all-reduce can start during backward; whole: one graph, every "
        "all-reduce after backward).")
    # parameter-golf #315, the DDP trainer #399 replaced, split Muon's work over the ranks this way
    ddp_muon: Literal["replicated", "round_robin"] = option(
        "replicated", "Muon under --comm ddp: {choices} (replicated: every rank orthogonalizes every matrix; "
        "round_robin: matrix i on rank i mod N, in layer order, the updates summed by one flat all-reduce, bf16 "
        "with --bf16's momentum part, and applied on every rank, as parameter-golf #315 did).")
    ortho: Literal["ns5", "polar_express"] = option("ns5", "Orthogonalizer: {choices}.")
    ortho_kernel: Literal["torch", "triton"] = option(  # triton: model/ortho_triton.py
        "torch", "Orthogonalizer kernels: {choices} (triton falls back to torch without a GPU).")
    bf16: tuple[BF16_PART, ...] = option(
        BF16_PARTS, "bf16 parts: all, none, or a list of {choices}.")
    compile: Literal["auto", "on", "off"] = option(
        "auto", "torch.compile: {choices} (auto = on for GPUs).", flag="--compile")
    rs_order: Literal["biggest_first", "small_first"] = option("biggest_first", "Reduce-scatter order: {choices}.")
    replicated: Literal["per_tensor", "bucketed"] = option("per_tensor", "Replicated all-reduce: {choices}.")
    # the record clips each rank's un-reduced grads
    clip_scope: Literal["local", "global"] = option("local", "Grad clip on: {choices} grads (explicit schedule).")
    attention: Literal["sdpa", "flash", "cudnn", "flex", "fa3"] = option(
        "sdpa", "Attention kernel: {choices} (sdpa: PyTorch's pick; the GPU-only ones fall back to sdpa on the CPU).")
    # the records update their EMA with a Python loop over the state dict (spec toggle 12)
    ema: Literal["foreach", "loop"] = option(
        "foreach", "Every-step fp32 EMA update: {choices} (foreach: one fused lerp over every tensor; loop: the "
        "records' Python loop over the state dict, a mul_ and an add_ per tensor).")
    # model/prefetch.py; both hand out the record's tokens in the record's order
    loader: Literal["prefetch", "record"] = option(
        "prefetch", "Data loader: {choices} (prefetch: next step's tokens copied and widened on the device while a "
        "step runs; record: the record's synchronous int64 loader).")
    # model/mlp_triton.py, model/ce_triton.py, model/fp8.py; each falls back to its reference path with a warning
    mlp_kernel: Literal["inductor", "triton_fused"] = option(
        "inductor", "LeakyReLU(0.5)^2 MLP: {choices} (triton_fused: golfprof's Triton kernels, the up-projection "
        "with its activation fused forward and the activation's gradient fused backward; GPU, bf16).")
    ce_kernel: Literal["inductor", "triton_fused"] = option(
        "inductor", "Softcapped cross-entropy in training: {choices} (triton_fused: one Triton pass writes loss "
        "and gradient; GPU).")
    fp8: Literal["off", "mlp", "mlp_head"] = option(
        "off", "FP8 forward projections (delayed scaling; backward: the up-projection's and head's input gradient in "
        "FP8, the down-projection's and every weight gradient in bf16): {choices} (GPUs of compute capability 8.9+).")

    def validate(self) -> None:
        validate_choices(self)
        from .attention import check_available  # torch-free: refuses fa3 without its package, in the parent

        check_available(self.attention)

    def compile_enabled(self, device_type: str) -> bool:
        if self.compile == "auto":
            return device_type == "cuda"
        return self.compile == "on"


def choices(cls: type, name: str) -> tuple[str, ...]:
    """The values a ``Literal`` field (or a tuple of one) admits; () for free-form fields."""
    hint = get_type_hints(cls, include_extras=False)[name]
    if getattr(hint, "__origin__", None) is tuple:
        hint = get_args(hint)[0]
    return tuple(get_args(hint)) if getattr(hint, "__origin__", None) is Literal else ()


def validate_choices(obj: Any) -> None:
    """Every ``Literal`` field of a config dataclass holds one of its choices (tuples: each element)."""
    for f in dataclasses.fields(obj):
        valid = choices(type(obj), f.name)
        if not valid:
            continue
        value = getattr(obj, f.name)
        bad = [v for v in (value if isinstance(value, tuple) else (value,)) if v not in valid]
        if bad:
            shown = ", ".join(map(str, bad)) if isinstance(value, tuple) else repr(value)
            raise ConfigError(f"{f.name} {shown} is not one of: {', '.join(valid)}")


# Fields that config.json files written by earlier versions hold and this one no longer has.
_RETIRED = {"train": {"warmup_steps", "val_every"}, "toggles": {"optimizer_delay_ms"}}


@dataclass(frozen=True)
class RunConfig:
    preset: str
    model: ModelConfig
    train: TrainConfig
    toggles: Toggles
    variant: str = "custom"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "RunConfig":
        model = dict(d["model"])
        model["ve_layers"] = tuple(model.get("ve_layers", ()))
        toggles = {k: v for k, v in d["toggles"].items() if k not in _RETIRED["toggles"]}
        toggles["bf16"] = tuple(toggles.get("bf16", ()))
        train = {k: v for k, v in d["train"].items() if k not in _RETIRED["train"]}
        return RunConfig(
            preset=d["preset"],
            model=ModelConfig(**model),
            train=TrainConfig(**train),
            toggles=Toggles(**toggles),
            variant=d.get("variant", "custom"),
        )

    def validate(self, world_size: int = 1) -> None:
        self.model.validate()
        self.toggles.validate()
        self.train.grad_accum(world_size)


FULL_MODEL = ModelConfig()
FULL_TRAIN = TrainConfig()

# Same structure as `full` (11 layers -> U-Net skips, XSA on the last 4, VE on the last 2),
# shrunk so that one CPU step costs tens of milliseconds.
TINY_MODEL = ModelConfig(
    vocab_size=64,
    num_layers=5,
    model_dim=32,
    num_heads=4,
    num_kv_heads=2,
    mlp_mult=3,
    rope_dims=4,
    rope_train_seq_len=32,
    xsa_last_n=2,
    bigram_buckets=128,
    bigram_dim=16,
    ve_dim=16,
    ve_layers=(3, 4),
)
TINY_TRAIN = TrainConfig(
    seq_len=64,
    tokens_per_step=64 * 24,
    micro_batch_seqs=4,
    steps=50,
    warmdown_steps=15,
    muon_momentum_warmup_steps=30,
    val_tokens=64 * 16 + 1,
)

# The single-GPU 7-layer record (parameter-golf PR #393): what the issue states, with the later
# records' additions (XSA, value embeddings, partial RoPE) switched off.
GOLF7L_MODEL = ModelConfig(
    num_layers=7,
    mlp_mult=4,
    mlp_act="relu2",
    rope_dims=64,
    rope_base=50_000.0,
    rope_train_seq_len=2048,
    xsa_last_n=0,
    bigram_buckets=8192,
    ve_layers=(),
    embedding_dtype="float16",
)
GOLF7L_TRAIN = TrainConfig(
    tokens_per_step=131_072,
    micro_batch_seqs=64,
    muon_lr=0.035,
    muon_wd=0.025,
    tok_lr=0.09,
    grad_clip=0.3,
    warmdown_steps=3500,
)

PRESETS: dict[str, tuple[ModelConfig, TrainConfig]] = {
    "full": (FULL_MODEL, FULL_TRAIN),
    "tiny": (TINY_MODEL, TINY_TRAIN),
    "golf7l": (GOLF7L_MODEL, GOLF7L_TRAIN),
}


def preset(name: str) -> tuple[ModelConfig, TrainConfig]:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name]


def replace(obj: Any, **changes: Any) -> Any:
    """dataclasses.replace that reports unknown fields as a ConfigError."""
    names = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ConfigError(f"unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    return dataclasses.replace(obj, **changes)
