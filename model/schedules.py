"""What happens between the end of backward and the next step: the three optimizer schedules.

- `LocalSchedule`: one process; Muon on every matrix.
- `DDPSchedule`: DistributedDataParallel reduced the grads during backward; every rank then
  runs Muon on its full copy of every matrix.
- `RoundRobinDDPSchedule`: the same grads, but each rank orthogonalizes only every N-th matrix and one flat
  all-reduce shares the updates (parameter-golf #315, the DDP baseline #399's banks were measured against).
- the sharded schedules (explicit Parallel Muon, packed, vectorized) live in `sharded.py`.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch
import torch.distributed as dist
from torch import Tensor, nn

from golfprof import faults
from golfprof.errors import GolfprofWarning
from golfprof.profiler import phases

from .config import Toggles, TrainConfig
from .optim import apply_update_, nesterov_, set_adam_lr, update_scale
from .ortho import orthogonalize
from .ortho_triton import OrthoSet, momentum_into, orthogonalize_triton
from .ortho_triton import available as triton_available

Mark = Callable[[str], ContextManager]
Slot = tuple[nn.Parameter, int | None]  # a matrix: parameter and slice index (banks) or None


def slot_data(slot: Slot) -> Tensor:
    p, i = slot
    return p.data if i is None else p.data[i]


def slot_grad(slot: Slot) -> Tensor:
    p, i = slot
    return p.grad if i is None else p.grad[i]


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
        self.ortho_kernel = self._pick_ortho_kernel(device)
        self._ortho_set: OrthoSet | None = None

    def _pick_ortho_kernel(self, device: torch.device) -> str:
        """`triton` only where it can run (a CUDA device, triton importable, bf16); else `torch`, said once."""
        if self.toggles.ortho_kernel != "triton":
            return "torch"
        ok, why = triton_available()
        if ok and device.type != "cuda":
            ok, why = False, f"the run's device is {device.type}"
        if not ok:
            warnings.warn(f"ortho_kernel=triton unavailable ({why}); using the torch orthogonalizer",
                          GolfprofWarning, stacklevel=2)
            return "torch"
        return "triton"

    def all_params(self) -> list[nn.Parameter]:
        return [p for ps in self.groups.values() for p in ps] + self.replicated

    def _planted_delay(self) -> None:
        delay = faults.optimizer_delay_ms()
        if delay > 0:
            with self.mark(phases.PLANTED_DELAY):
                time.sleep(delay / 1000)

    def _clip(self, params: list[nn.Parameter]) -> None:
        if self.train.grad_clip > 0:
            with self.mark(phases.GRAD_CLIP):
                torch.nn.utils.clip_grad_norm_(params, self.train.grad_clip, foreach=True)

    def _ortho(self, u: Tensor) -> Tensor:
        if self.ortho_kernel == "triton":
            return orthogonalize_triton(u, self.toggles.ortho, self.train.muon_ns_steps)
        return orthogonalize(u, self.toggles.ortho, self.train.muon_ns_steps, self.ortho_dtype)

    def _momentum(self, buf: Tensor, grad: Tensor, mu: float) -> Tensor:
        """Nesterov momentum; with the triton kernel fused into one pass and already bf16."""
        if self.ortho_kernel == "triton":
            return momentum_into(buf, grad, mu)
        return nesterov_(buf, grad, mu)

    def _momentum_buf(self, p: nn.Parameter) -> Tensor:
        buf = self.momentum.get(id(p))
        if buf is None:
            buf = self.momentum[id(p)] = torch.zeros_like(p, dtype=self.mom_dtype)
        return buf

    def _muon_full(self, h: StepHyper) -> None:
        """Every matrix on this rank: banks as one batched call, unbanked one matrix at a time."""
        if self.ortho_kernel == "triton":
            return self._muon_full_one_graph(h)
        updates: list[tuple[nn.Parameter, Tensor]] = []
        for bank, params in self.groups.items():
            with self.mark(phases.bank_orthogonalize(bank)):
                for p in params:
                    updates.append((p, self._ortho(nesterov_(self._momentum_buf(p), p.grad, h.momentum))))
        self._apply_all(updates, h)

    def _muon_full_one_graph(self, h: StepHyper) -> None:
        """Triton: every matrix in one `OrthoSet` replay, the fused momentum kernel writing its
        inputs, so the host launches 1 + one kernel per matrix instead of ~20 per bank."""
        params = [p for ps in self.groups.values() for p in ps]
        if self._ortho_set is None:
            self._ortho_set = OrthoSet([tuple(p.shape) for p in params], params[0].device, self.toggles.ortho,
                                       self.train.muon_ns_steps)
        with self.mark(phases.bank_orthogonalize(phases.ALL_BANKS)):
            for p, dst in zip(params, self._ortho_set.inputs):
                momentum_into(self._momentum_buf(p), p.grad, h.momentum, dst)
            updates = list(zip(params, self._ortho_set.run()))
        self._apply_all(updates, h)

    def _apply_all(self, updates: list[tuple[nn.Parameter, Tensor]], h: StepHyper) -> None:
        lr = self.train.muon_lr * h.lr_mult
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
                self._muon(h)

    def _muon(self, h: StepHyper) -> None:
        self._muon_full(h)


class RoundRobinDDPSchedule(DDPSchedule):
    """#315's Muon under DDP: matrix i (in layer order: q, k, v, o, up, down of layer 0, then layer 1, ...) is
    orthogonalized on rank i mod N only; each rank writes its updates into one flat buffer of every matrix,
    a blocking all-reduce sums the buffers, and every rank applies every update. Replicated work: none of NS,
    all of the update's arithmetic."""

    def __init__(self, *args, slots: list[tuple[Slot, str]], world_size: int, rank: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.world_size, self.rank = world_size, rank
        self.slots = slots  # (matrix, its bank's name) in layer order
        shapes = [tuple(slot_data(slot).shape) for slot, _ in slots]
        sizes = [math.prod(s) for s in shapes]
        # bf16 as #315's (and as the explicit schedule's buffers: with the momentum part of --bf16)
        self.flat = torch.zeros(sum(sizes), dtype=self.mom_dtype, device=slots[0][0][0].device)
        # per matrix: its (rows, cols) view of the flat buffer
        self.views = [part.view(shape) for part, shape in zip(self.flat.split(sizes), shapes)]

    def _muon(self, h: StepHyper) -> None:
        self.flat.zero_()  # the matrices other ranks own add nothing here
        for k in range(self.rank, len(self.slots), self.world_size):
            slot, bank = self.slots[k]
            p, i = slot
            with self.mark(phases.bank_orthogonalize(bank)):
                buf = self._momentum_buf(p)
                u = nesterov_(buf if i is None else buf[i], slot_grad(slot), h.momentum)
                self.views[k].copy_(self._ortho(u))
        with self.mark(phases.MUON_ALLREDUCE):
            dist.all_reduce(self.flat)
        lr = self.train.muon_lr * h.lr_mult
        with self.mark(phases.UPDATE_APPLY):
            for (slot, _), u in zip(self.slots, self.views):
                apply_update_(slot_data(slot), u, lr, self.train.muon_wd, update_scale(u.shape))
