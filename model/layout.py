"""Lossless conversion between the banked and unbanked state-dict layouts."""

from __future__ import annotations

import torch
from torch import Tensor

from .config import ModelConfig
from .gpt import BANK_NAMES, unbanked_name


def unbank_state_dict(sd: dict[str, Tensor], cfg: ModelConfig) -> dict[str, Tensor]:
    """Split each bank into its per-layer matrices under the unbanked module names."""
    missing = [b for b in BANK_NAMES if b not in sd]
    if missing:
        raise KeyError(f"not a banked state dict: missing {', '.join(missing)}")
    out = {k: v for k, v in sd.items() if k not in BANK_NAMES}
    for bank in BANK_NAMES:
        t = sd[bank]
        for i in range(t.shape[0]):
            out[unbanked_name(bank, i, cfg.num_layers)] = t[i].clone()
    return out


def rebank_state_dict(sd: dict[str, Tensor], cfg: ModelConfig) -> dict[str, Tensor]:
    """Stack the per-layer matrices back into the four banks."""
    L = cfg.num_layers
    used: set[str] = set()
    out: dict[str, Tensor] = {}
    for bank, shape in cfg.bank_shapes().items():
        keys = [unbanked_name(bank, i, L) for i in range(shape[0])]
        absent = [k for k in keys if k not in sd]
        if absent:
            raise KeyError(f"not an unbanked state dict: missing {absent[0]}")
        out[bank] = torch.stack([sd[k] for k in keys])
        used.update(keys)
    out.update({k: v for k, v in sd.items() if k not in used})
    return out
