"""Muon update arithmetic, Adam groups, learning-rate and momentum schedules, and EMA."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import TrainConfig


def lr_multiplier(step: int, total_steps: int, warmdown_steps: int) -> float:
    """1 until the last `warmdown_steps`, then linear to 0 (the record's schedule, by steps)."""
    if warmdown_steps <= 0:
        return 1.0
    remaining = total_steps - step
    return max(0.0, min(1.0, remaining / warmdown_steps))


def muon_momentum(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up from muon_momentum_start to muon_momentum."""
    if cfg.muon_momentum_warmup_steps <= 0:
        return cfg.muon_momentum
    frac = min(step / cfg.muon_momentum_warmup_steps, 1.0)
    return (1 - frac) * cfg.muon_momentum_start + frac * cfg.muon_momentum


def update_scale(shape: torch.Size | tuple[int, ...]) -> float:
    """max(1, rows/cols)**0.5: keeps the update RMS comparable for tall matrices."""
    rows, cols = shape[-2], shape[-1]
    return max(1.0, rows / cols) ** 0.5


def nesterov_(buf: Tensor, grad: Tensor, mu: float) -> Tensor:
    """M <- mu*M + g in place; returns g + mu*M (computed in the gradient's dtype)."""
    buf.mul_(mu).add_(grad.to(buf.dtype))
    return grad.add(buf.to(grad.dtype), alpha=mu)


def apply_update_(w: Tensor, update: Tensor, lr: float, wd: float, scale: float) -> None:
    """W <- W(1 - lr*wd) - lr*scale*U (decoupled weight decay)."""
    w.mul_(1 - lr * wd)
    w.add_(update.to(w.dtype), alpha=-lr * scale)


def build_adam(groups: dict[str, list[nn.Parameter]], cfg: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """tok (embedding tables) and scalar groups with the record's learning rates."""
    param_groups = [
        {"params": groups["tok"], "lr": cfg.tok_lr, "base_lr": cfg.tok_lr, "name": "tok"},
        {"params": groups["scalar"], "lr": cfg.scalar_lr, "base_lr": cfg.scalar_lr, "name": "scalar"},
    ]
    return torch.optim.AdamW(
        [g for g in param_groups if g["params"]],
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_eps,
        weight_decay=cfg.adam_wd,
        fused=fused,
    )


def set_adam_lr(adam: torch.optim.Optimizer, mult: float) -> None:
    for g in adam.param_groups:
        g["lr"] = g["base_lr"] * mult


class EMA:
    """fp32 exponential moving average of every floating tensor in the state dict; ``loop`` updates it as the
    records do, tensor by tensor (two kernels each), instead of in one fused pass."""

    def __init__(self, model: nn.Module, decay: float, loop: bool = False) -> None:
        self.decay = decay
        self.loop = loop
        self.live = [t for t in model.state_dict().values() if t.is_floating_point()]
        self.shadow = [t.detach().float().clone() for t in self.live]
        self.keys = [k for k, t in model.state_dict().items() if t.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        if self.loop:
            for s, t in zip(self.shadow, self.live):
                s.mul_(self.decay).add_(t.detach().float(), alpha=1.0 - self.decay)
            return
        current = [t.float() if t.dtype != torch.float32 else t for t in self.live]
        torch._foreach_lerp_(self.shadow, current, 1.0 - self.decay)

    def state_dict(self) -> dict[str, Tensor]:
        return dict(zip(self.keys, self.shadow))
