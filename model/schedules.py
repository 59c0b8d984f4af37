"""What happens between the end of backward and the next step: the three optimizer schedules.

- `LocalSchedule`: one process; Muon on every matrix.
- `DDPSchedule`: DistributedDataParallel reduced the grads during backward; every rank then
  runs Muon on its full copy of every matrix.
- `ExplicitSchedule`: Parallel Muon (the record): async reduce-scatter per bank, replicated
  all-reduce and Adam while those fly, then per bank wait -> momentum + orthogonalize the local
  shard -> async all-gather, so bank k's all-gather overlaps bank k+1's orthogonalization.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch
import torch.distributed as dist
from torch import Tensor, nn

from golfprof.profiler import phases

from .config import Toggles, TrainConfig
from .optim import apply_update_, nesterov_, set_adam_lr, update_scale
from .ortho import orthogonalize

Mark = Callable[[str], ContextManager]


@dataclass
class StepHyper:
    lr_mult: float
    momentum: float


class _Base:
    def __init__(self, groups: dict[str, list[nn.Parameter]], replicated: list[nn.Parameter],
                 adam: torch.optim.Optimizer, train: TrainConfig, toggles: Toggles,
                 device: torch.device, mark: Mark) -> None:
        self.groups = groups
        self.replicated = replicated
        self.adam = adam
        self.train = train
        self.toggles = toggles
        self.mark = mark
        self.mom_dtype = torch.bfloat16 if "momentum" in toggles.bf16 else torch.float32
        # bf16 Newton–Schulz on GPUs; the CPU has no fast bf16 matmul and tests need fp32.
        self.ortho_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.momentum: dict[int, Tensor] = {}

    def all_params(self) -> list[nn.Parameter]:
        return [p for ps in self.groups.values() for p in ps] + self.replicated

    def _planted_delay(self) -> None:
        if self.toggles.optimizer_delay_ms > 0:
            with self.mark(phases.PLANTED_DELAY):
                time.sleep(self.toggles.optimizer_delay_ms / 1000)

    def _clip(self, params: list[nn.Parameter]) -> None:
        if self.train.grad_clip > 0:
            with self.mark(phases.GRAD_CLIP):
                torch.nn.utils.clip_grad_norm_(params, self.train.grad_clip, foreach=True)

    def _ortho(self, u: Tensor) -> Tensor:
        return orthogonalize(u, self.toggles.ortho, self.train.muon_ns_steps, self.ortho_dtype)

    def _muon_full(self, h: StepHyper) -> None:
        """Every matrix on this rank: banks as one batched call, unbanked one matrix at a time."""
        lr = self.train.muon_lr * h.lr_mult
        updates: list[tuple[nn.Parameter, Tensor]] = []
        for bank, params in self.groups.items():
            with self.mark(phases.bank_orthogonalize(bank)):
                for p in params:
                    buf = self.momentum.get(id(p))
                    if buf is None:
                        buf = self.momentum[id(p)] = torch.zeros_like(p, dtype=self.mom_dtype)
                    updates.append((p, self._ortho(nesterov_(buf, p.grad, h.momentum))))
        with self.mark(phases.UPDATE_APPLY):
            for p, u in updates:
                apply_update_(p.data, u, lr, self.train.muon_wd, update_scale(p.shape))

    def _adam(self, h: StepHyper) -> None:
        with self.mark(phases.ADAM):
            set_adam_lr(self.adam, h.lr_mult)
            self.adam.step()


class LocalSchedule(_Base):
    def step(self, h: StepHyper) -> None:
        self._clip(self.all_params())
        with self.mark(phases.OPTIMIZER):
            self._planted_delay()
            self._adam(h)
            with self.mark(phases.MUON):
                self._muon_full(h)


class DDPSchedule(_Base):
    """Grads arrive already averaged by DDP's bucketed all-reduce during backward."""

    def step(self, h: StepHyper) -> None:
        self._clip(self.all_params())
        with self.mark(phases.OPTIMIZER):
            self._planted_delay()
            # Marked so traces of both schedules carry the same phases; DDP did the work already.
            with self.mark(phases.REPLICATED_ALLREDUCE):
                pass
            self._adam(h)
            with self.mark(phases.MUON):
                self._muon_full(h)


@dataclass
class _BankComm:
    name: str
    params: list[nn.Parameter]
    count: int  # matrices in the bank (B)
    padded: Tensor  # (P, m, n): grads in, padding zero
    shard: Tensor  # (S, m, n): this rank's reduced slice
    shard_mom: Tensor
    full_update: Tensor  # (P, m, n): gathered orthogonalized updates
    scale: float
    rs: dist.Work | None = None
    ag: dist.Work | None = None


class ExplicitSchedule(_Base):
    def __init__(self, *args, world_size: int, rank: int, backend: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.world = world_size
        self.rank = rank
        # gloo has no AVG reduce-scatter: pre-scale and SUM there.
        self.avg = dist.ReduceOp.AVG if backend == "nccl" else dist.ReduceOp.SUM
        self.prescale = 1.0 if backend == "nccl" else 1.0 / world_size
        self.comm_dtype = self.mom_dtype
        self.banks = self._build()

    def _build(self) -> list[_BankComm]:
        out = []
        for name, params in self.groups.items():
            shape = params[0].shape
            count = shape[0] if len(params) == 1 and params[0].dim() == 3 else len(params)
            mat = tuple(shape[-2:])
            padded_count = math.ceil(count / self.world) * self.world
            per_rank = padded_count // self.world
            dev = params[0].device
            out.append(_BankComm(
                name=name, params=params, count=count,
                padded=torch.zeros((padded_count, *mat), dtype=self.comm_dtype, device=dev),
                shard=torch.zeros((per_rank, *mat), dtype=self.comm_dtype, device=dev),
                shard_mom=torch.zeros((per_rank, *mat), dtype=self.mom_dtype, device=dev),
                full_update=torch.zeros((padded_count, *mat), dtype=self.comm_dtype, device=dev),
                scale=update_scale(mat),
            ))
        out.sort(key=lambda b: b.padded.numel(), reverse=self.toggles.rs_order == "biggest_first")
        return out

    def _launch_reduce_scatters(self) -> None:
        with self.mark(phases.RS_LAUNCH):
            for b in self.banks:
                if len(b.params) == 1 and b.params[0].dim() == 3:
                    b.padded[: b.count].copy_(b.params[0].grad)
                else:
                    for i, p in enumerate(b.params):
                        b.padded[i].copy_(p.grad)
                if self.prescale != 1.0:
                    b.padded[: b.count].mul_(self.prescale)
                b.rs = dist.reduce_scatter_tensor(b.shard, b.padded, op=self.avg, async_op=True)

    def _allreduce_replicated(self) -> None:
        with self.mark(phases.REPLICATED_ALLREDUCE):
            grads = [p.grad for p in self.replicated if p.grad is not None]
            if self.toggles.replicated == "per_tensor":
                for g in grads:
                    if self.prescale != 1.0:
                        g.mul_(self.prescale)
                    dist.all_reduce(g, op=self.avg)
                return
            by_dtype: dict[torch.dtype, list[Tensor]] = {}
            for g in grads:
                by_dtype.setdefault(g.dtype, []).append(g)
            for same in by_dtype.values():
                flat = torch.cat([g.reshape(-1) for g in same])
                if self.prescale != 1.0:
                    flat.mul_(self.prescale)
                dist.all_reduce(flat, op=self.avg)
                torch._foreach_copy_(same, [v.view_as(g) for v, g in zip(flat.split([g.numel() for g in same]), same)])

    def _global_clip(self) -> None:
        """Clip on the reduced gradient (the DDP semantics); needs every reduce-scatter done."""
        with self.mark(phases.GRAD_CLIP):
            for b in self.banks:
                self._wait_rs(b)
            shard_sq = sum(b.shard.float().square().sum() for b in self.banks)
            dist.all_reduce(shard_sq)
            rep = [p.grad for p in self.replicated if p.grad is not None]
            rep_sq = sum(g.float().square().sum() for g in rep)
            norm = (shard_sq + rep_sq).sqrt()
            coef = (self.train.grad_clip / (norm + 1e-6)).clamp(max=1.0)
            for b in self.banks:
                b.shard.mul_(coef.to(b.shard.dtype))
            torch._foreach_mul_(rep, coef)

    @staticmethod
    def _wait_rs(b: _BankComm) -> None:
        """Wait once: gloo copies the result into the output again on every wait()."""
        if b.rs is not None:
            b.rs.wait()
            b.rs = None

    def _apply(self, b: _BankComm, lr: float) -> None:
        with self.mark(phases.UPDATE_APPLY):
            b.ag.wait()
            upd = b.full_update[: b.count]
            if len(b.params) == 1 and b.params[0].dim() == 3:
                apply_update_(b.params[0].data, upd, lr, self.train.muon_wd, b.scale)
            else:
                for i, p in enumerate(b.params):
                    apply_update_(p.data, upd[i], lr, self.train.muon_wd, b.scale)

    def step(self, h: StepHyper) -> None:
        local_clip = self.toggles.clip_scope == "local" and self.train.grad_clip > 0
        if local_clip:
            self._clip(self.all_params())  # the record clips each rank's un-reduced grads
        with self.mark(phases.OPTIMIZER):
            self._planted_delay()
            self._launch_reduce_scatters()
            self._allreduce_replicated()
            if self.toggles.clip_scope == "global" and self.train.grad_clip > 0:
                self._global_clip()
            self._adam(h)
            lr = self.train.muon_lr * h.lr_mult
            with self.mark(phases.MUON):
                prev: _BankComm | None = None
                for b in self.banks:
                    if prev is not None:
                        self._apply(prev, lr)
                    with self.mark(phases.bank_wait(b.name)):
                        self._wait_rs(b)
                    with self.mark(phases.bank_orthogonalize(b.name)):
                        u = nesterov_(b.shard_mom, b.shard, h.momentum)
                        u = self._ortho(u).to(self.comm_dtype)
                    with self.mark(phases.bank_all_gather(b.name)):
                        b.ag = dist.all_gather_into_tensor(b.full_update, u, async_op=True)
                    prev = b
                if prev is not None:
                    self._apply(prev, lr)
