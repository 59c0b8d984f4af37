"""FLOP counts: model FLOPs per token (for MFU) and Newton–Schulz FLOPs per optimizer step.

Per token, forward + backward: 6 FLOPs per matmul parameter (2 forward, 4 backward), plus
attention's QKᵀ and AV. Those cost 4·d·T per token per layer forward without a mask; with the
causal mask half of the scores are skipped (FlashAttention's convention), so forward + backward
is 3 × 2·d·T = 6·L·d·T per token. Embedding lookups are not matmuls and are not counted; the tied
output head is.
"""

from __future__ import annotations

import math

from .config import ModelConfig
from .ortho import flops as ortho_flops


def matmul_params(cfg: ModelConfig) -> int:
    banks = sum(math.prod(s) for s in cfg.bank_shapes().values())
    head = cfg.vocab_size * cfg.model_dim
    bigram = cfg.bigram_dim * cfg.model_dim
    ve = cfg.ve_dim * cfg.kv_dim if cfg.ve_layers else 0
    return banks + head + bigram + ve


def attention_flops_per_token(cfg: ModelConfig, seq_len: int) -> int:
    return 6 * cfg.num_layers * cfg.model_dim * seq_len


def flops_per_token(cfg: ModelConfig, seq_len: int) -> int:
    return 6 * matmul_params(cfg) + attention_flops_per_token(cfg, seq_len)


def ortho_flops_per_rank(cfg: ModelConfig, ns_steps: int, world_size: int, sharded: bool) -> int:
    """NS/PE FLOPs one rank does per step: all banks, or its padded shard of each bank."""
    total = 0
    for shape in cfg.bank_shapes().values():
        count = shape[0]
        if sharded and world_size > 1:
            count = math.ceil(count / world_size)
        total += ortho_flops((count, *shape[1:]), ns_steps)
    return total
