"""Sharded Muon schedules: each rank orthogonalizes a slice of every group of matrices.

All three share one pipeline: async reduce-scatter per group, replicated all-reduce and Adam while
those fly, then per group wait -> momentum + orthogonalize the local shard -> async all-gather,
with group k's all-gather overlapping group k+1's work. They differ in what a group is and what
travels back:

- `explicit` (Parallel Muon, parameter-golf #399): one group per bank; updates are gathered.
- `vectorized` (modded-nanogpt #125): one group per matrix shape (the banks' shapes); each rank
  applies the update to its slice of the parameters and the updated parameters are gathered.
- `packed` (modded-nanogpt #132): attention and MLP matrices are stored in one shape
  (a layer's [W_q; W_k; W_v; W_o] stacks to (3d, d) like W_up and W_downᵀ) so that a group can
  mix kinds; group sizes keep every rank's slice to one kind, with minimal padding.
"""

from __future__ import annotations

import abc
import math
from typing import Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from golfprof.profiler import phases

from .optim import apply_update_, update_scale
from .ortho_triton import OrthoSet, momentum_into
from .schedules import Slot, StepHyper, _Base, slot_data, slot_grad

# torch 2.13 renamed the tensor collectives (the old names warn); looked up on `dist` at call time, so a
# recorder wrapping them (profiler/collectives.py) sees every call
REDUCE_SCATTER = "reduce_scatter_single" if hasattr(dist, "reduce_scatter_single") else "reduce_scatter_tensor"
ALL_GATHER = "all_gather_single" if hasattr(dist, "all_gather_single") else "all_gather_into_tensor"


class _Group(abc.ABC):
    """One reduce-scatter / all-gather pair and the shard this rank works on."""

    def __init__(self, name: str, count: int, shape: tuple[int, int], world: int, rank: int,
                 comm_dtype: torch.dtype, mom_dtype: torch.dtype, gather_dtype: torch.dtype,
                 device: torch.device) -> None:
        self.name = name
        self.count = count
        self.padded_count = math.ceil(count / world) * world
        self.per_rank = self.padded_count // world
        self.rank = rank
        self.padded = torch.zeros((self.padded_count, *shape), dtype=comm_dtype, device=device)
        self.shard = torch.zeros((self.per_rank, *shape), dtype=comm_dtype, device=device)
        self.shard_mom = torch.zeros((self.per_rank, *shape), dtype=mom_dtype, device=device)
        self.full = torch.zeros((self.padded_count, *shape), dtype=gather_dtype, device=device)
        self.rs: dist.Work | None = None
        self.ag: dist.Work | None = None

    @abc.abstractmethod
    def fill(self) -> None:
        """Copy this group's local grads into `padded` (padding rows stay zero)."""

    def orthogonalize(self, u: Tensor, ortho: Callable[[Tensor], Tensor]) -> Tensor:
        return ortho(u)

    def payload(self, u: Tensor, lr: float, wd: float) -> Tensor:
        """What this rank contributes to the all-gather: contiguous, as NCCL requires (the
        orthogonalizers return tall matrices as transposed views; gloo accepts those)."""
        return u.to(self.full.dtype).contiguous()

    @abc.abstractmethod
    def finish(self, lr: float, wd: float) -> None:
        """Apply the gathered `full` buffer to the parameters."""


class BankGroup(_Group):
    """A bank (or, unbanked, the matrices that would form it); updates are gathered."""

    def __init__(self, name: str, params: list[nn.Parameter], **kw) -> None:
        self.params = params
        self.stacked = len(params) == 1 and params[0].dim() == 3
        count = params[0].shape[0] if self.stacked else len(params)
        shape = tuple(params[0].shape[-2:])
        self.scale = update_scale(shape)
        super().__init__(name, count, shape, **kw)

    def fill(self) -> None:
        if self.stacked:
            self.padded[: self.count].copy_(self.params[0].grad)
        else:
            for i, p in enumerate(self.params):
                self.padded[i].copy_(p.grad)

    def finish(self, lr: float, wd: float) -> None:
        upd = self.full[: self.count]
        if self.stacked:
            apply_update_(self.params[0].data, upd, lr, wd, self.scale)
        else:
            for i, p in enumerate(self.params):
                apply_update_(p.data, upd[i], lr, wd, self.scale)


class VectorizedGroup(BankGroup):
    """Per-shape stack; the updated parameters travel back, not the updates (as in #125)."""

    def payload(self, u: Tensor, lr: float, wd: float) -> Tensor:
        lo = self.rank * self.per_rank
        rows = range(lo, min(lo + self.per_rank, self.count))
        mine = torch.zeros_like(u, dtype=self.full.dtype, memory_format=torch.contiguous_format)  # for NCCL
        for j, i in enumerate(rows):
            mine[j].copy_(self.params[0].data[i] if self.stacked else self.params[i].data)
        n = len(rows)
        apply_update_(mine[:n], u[:n], lr, wd, self.scale)
        return mine

    def finish(self, lr: float, wd: float) -> None:
        if self.stacked:
            self.params[0].data.copy_(self.full[: self.count])
        else:
            torch._foreach_copy_([p.data for p in self.params], list(self.full[: self.count].unbind(0)))


# ---- packed groups (#132) -----------------------------------------------------------------------

KINDS = ("attn", "mlp_up", "mlp_down")


def pack_rows(model: nn.Module) -> dict[str, int]:
    """Rows of each kind's packed (rows, d) matrix."""
    cfg = model.cfg
    return {"attn": 2 * cfg.model_dim + 2 * cfg.kv_dim, "mlp_up": cfg.mlp_dim, "mlp_down": cfg.mlp_dim}


def plan_packed(counts: dict[str, int], world: int) -> tuple[int, list[list[tuple[str, int] | None]]]:
    """Slice size s and groups of W·s slots, each rank's s slots of one kind.

    Minimises padding among plans with no more groups than kinds (so the packed schedule never
    issues more collectives than one per kind); ties go to fewer groups.
    """
    best = None
    for s in range(1, max(counts.values()) + 1):
        slices = sum(math.ceil(n / s) for n in counts.values())
        groups = math.ceil(slices / world)
        pad = groups * world * s - sum(counts.values())
        if groups <= len(counts) and (best is None or (pad, groups) < best[:2]):
            best = (pad, groups, s)
    _, n_groups, s = best  # s = max count always qualifies: one slice per kind
    slices: list[list[tuple[str, int] | None]] = []
    for kind, n in counts.items():
        items = [(kind, i) for i in range(n)]
        for k in range(0, n, s):
            chunk: list[tuple[str, int] | None] = list(items[k:k + s])
            slices.append(chunk + [None] * (s - len(chunk)))
    slices += [[None] * s] * (n_groups * world - len(slices))
    return s, [sum(slices[g * world:(g + 1) * world], []) for g in range(n_groups)]


class PackedGroup(_Group):
    def __init__(self, name: str, slots: list[tuple[str, int] | None], model: nn.Module, **kw) -> None:
        self.model = model
        self.slots = slots
        cfg = model.cfg
        d, kv = cfg.model_dim, cfg.kv_dim
        self.attn_split = [d, kv, kv, d]
        world = kw["world"]
        super().__init__(name, len(slots), (pack_rows(model)["attn"], d), **kw)
        assert self.padded_count == len(slots) and len(slots) % world == 0
        mine = [s for s in slots[kw["rank"] * self.per_rank:(kw["rank"] + 1) * self.per_rank] if s is not None]
        kinds = {k for k, _ in mine}
        assert len(kinds) <= 1, f"rank {kw['rank']} got mixed kinds {kinds}"
        self.my_kind = kinds.pop() if kinds else None

    def _matrices(self, kind: str, layer: int) -> list[Slot]:
        q, k, v, o, up, down = self.model.layer_slots(layer)
        return {"attn": [q, k, v, o], "mlp_up": [up], "mlp_down": [down]}[kind]

    def fill(self) -> None:
        for j, slot in enumerate(self.slots):
            if slot is None:
                continue
            kind, layer = slot
            mats = self._matrices(kind, layer)
            if kind == "attn":
                self.padded[j].copy_(torch.cat([slot_grad(m) for m in mats], dim=0))
            elif kind == "mlp_up":
                self.padded[j].copy_(slot_grad(mats[0]))
            else:
                self.padded[j].copy_(slot_grad(mats[0]).T)

    def orthogonalize(self, u: Tensor, ortho: Callable[[Tensor], Tensor]) -> Tensor:
        if self.my_kind == "attn":
            return torch.cat([ortho(part) for part in u.split(self.attn_split, dim=1)], dim=1)
        return ortho(u)

    def finish(self, lr: float, wd: float) -> None:
        for j, slot in enumerate(self.slots):
            if slot is None:
                continue
            kind, layer = slot
            mats = self._matrices(kind, layer)
            upd = self.full[j]
            if kind == "attn":
                for m, part in zip(mats, upd.split(self.attn_split, dim=0)):
                    apply_update_(slot_data(m), part, lr, wd, update_scale(part.shape))
            elif kind == "mlp_up":
                apply_update_(slot_data(mats[0]), upd, lr, wd, update_scale(upd.shape))
            else:
                apply_update_(slot_data(mats[0]), upd.T, lr, wd, update_scale(upd.T.shape))


class ShardedSchedule(_Base):
    def __init__(self, *args, model: nn.Module, world_size: int, rank: int, backend: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.world = world_size
        self.rank = rank
        # gloo has no AVG reduce-scatter: pre-scale and SUM there.
        self.avg = dist.ReduceOp.AVG if backend == "nccl" else dist.ReduceOp.SUM
        self.prescale = 1.0 if backend == "nccl" else 1.0 / world_size
        self.comm_dtype = self.mom_dtype
        self.banks = self._build(model)
        self._group_sets: dict[str, OrthoSet] = {}

    def _build(self, model: nn.Module) -> list[_Group]:
        first = next(iter(self.groups.values()))[0]
        kw = dict(world=self.world, rank=self.rank, comm_dtype=self.comm_dtype, mom_dtype=self.mom_dtype,
                  device=first.device)
        comm = self.toggles.comm
        if comm == "packed":
            rows = pack_rows(model)
            out: list[_Group] = []
            L = model.cfg.num_layers
            shapes = sorted(set(rows.values()))
            for shape_rows in shapes:
                counts = {k: L for k in KINDS if rows[k] == shape_rows}
                _, plan = plan_packed(counts, self.world)
                for g, slots in enumerate(plan):
                    name = f"packed{shape_rows}_{g}"
                    out.append(PackedGroup(name, slots, model, gather_dtype=self.comm_dtype, **kw))
        elif comm == "vectorized":
            out = [VectorizedGroup(name, ps, gather_dtype=first.dtype, **kw) for name, ps in self.groups.items()]
        else:
            out = [BankGroup(name, ps, gather_dtype=self.comm_dtype, **kw) for name, ps in self.groups.items()]
        out.sort(key=lambda b: b.padded.numel(), reverse=self.toggles.rs_order == "biggest_first")
        return out

    def _launch_reduce_scatters(self) -> None:
        with self.mark(phases.RS_LAUNCH):
            for b in self.banks:
                b.fill()
                if self.prescale != 1.0:
                    b.padded.mul_(self.prescale)
                b.rs = getattr(dist, REDUCE_SCATTER)(b.shard, b.padded, op=self.avg, async_op=True)

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

    def _orthogonalized_shard(self, b: _Group, mu: float) -> Tensor:
        """Momentum + orthogonalization of b's shard. With the triton kernel, a group that
        orthogonalizes its shard whole gets its own `OrthoSet`: the fused momentum writes into its
        input and one replay follows (2 launches, where the per-call path takes 4 and torch ~20).
        Its output is static: this step's all-gather reads it and is waited on before the next
        step's replay rewrites it."""
        if self.ortho_kernel == "triton" and type(b).orthogonalize is _Group.orthogonalize:
            oset = self._group_sets.get(b.name)
            if oset is None:
                oset = self._group_sets[b.name] = OrthoSet([tuple(b.shard.shape)], b.shard.device, self.toggles.ortho,
                                                           self.train.muon_ns_steps)
            momentum_into(b.shard_mom, b.shard, mu, oset.inputs[0])
            return oset.run()[0]
        return b.orthogonalize(self._momentum(b.shard_mom, b.shard, mu), self._ortho)

    @staticmethod
    def _wait_rs(b: _Group) -> None:
        """Wait once: gloo copies the result into the output again on every wait()."""
        if b.rs is not None:
            b.rs.wait()
            b.rs = None

    def _apply(self, b: _Group, lr: float) -> None:
        with self.mark(phases.UPDATE_APPLY):
            b.ag.wait()
            # drop the handle: a gloo work object that outlives destroy_process_group (kept by a
            # schedule until the garbage collector or interpreter exit frees it) can abort the
            # process (SIGABRT, "terminate called without an active exception")
            b.ag = None
            b.finish(lr, self.train.muon_wd)

    def step(self, h: StepHyper) -> None:
        if self.toggles.clip_scope == "local" and self.train.grad_clip > 0:
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
                prev: _Group | None = None
                for b in self.banks:
                    if prev is not None:
                        self._apply(prev, lr)
                    with self.mark(phases.bank_wait(b.name)):
                        self._wait_rs(b)
                    with self.mark(phases.bank_orthogonalize(b.name)):
                        u = self._orthogonalized_shard(b, h.momentum)
                    with self.mark(phases.bank_all_gather(b.name)):
                        b.ag = getattr(dist, ALL_GATHER)(b.full, b.payload(u, lr, self.train.muon_wd), async_op=True)
                    prev = b
                if prev is not None:
                    self._apply(prev, lr)
