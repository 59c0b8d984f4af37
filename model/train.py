"""One training step of the banked-Muon trainer, with every phase marked.

Phase marks wrap whole compiled calls (Dynamo would drop marks inside compiled regions).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from golfprof.profiler import phases
from golfprof.profiler.phases import UNMARKED, Marker

from .attention import prepare as prepare_attention
from .attention import resolve_backend
from .config import RunConfig
from .gpt import GPT
from .kernel_choice import resolve as resolve_kernels
from .optim import EMA, build_adam, lr_multiplier, muon_momentum
from .schedules import DDPSchedule, LocalSchedule, RoundRobinDDPSchedule, StepHyper
from .sharded import ShardedSchedule


@dataclass(frozen=True)
class DistInfo:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    backend: str = "none"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


class Trainer:
    def __init__(self, run: RunConfig, device: torch.device, dist_info: DistInfo = DistInfo(),
                 mark: Marker = UNMARKED) -> None:
        run.validate(dist_info.world_size)
        self.run = run
        self.device = device
        self.dist = dist_info
        self.mark = mark
        self.grad_accum = run.train.grad_accum(dist_info.world_size)
        t = run.toggles
        torch.manual_seed(run.train.seed)
        # the kernel that actually runs (GPU-only choices fall back to sdpa elsewhere, with a warning)
        self.attention_used, _ = resolve_backend(
            t.attention, device, heads=(run.model.num_heads, run.model.num_kv_heads, run.model.head_dim),
            dtype=torch.bfloat16 if "weights" in t.bf16 else torch.float32)
        prepare_attention(self.attention_used, run.train.seq_len, device)
        self.kernels = resolve_kernels(t, device)  # fused MLP / CE and FP8 fall back where they cannot run
        model = GPT(run.model, t.layout, seed=run.train.seed, attention=self.attention_used,
                    bf16_embeddings="embeddings" in t.bf16, bf16_rotary="rotary" in t.bf16,
                    **dataclasses.asdict(self.kernels))
        self.model = model.to(device)
        self.model.rotary(run.train.seq_len, device)  # the RoPE tables before any compiled forward: graph inputs
        groups = self.model.param_groups()
        # fused on the CPU too: its kernel does the arithmetic in fp32, where the plain one works in the parameter's
        # dtype and golf7l's fp16 embeddings went NaN at step 1 (eps=1e-8 and grad**2 underflow to 0 in fp16)
        self.adam = build_adam(groups, run.train, fused=device.type in ("cuda", "cpu"))

        fwd: nn.Module = self.model
        if t.compile_enabled(device.type):
            fwd = torch.compile(fwd, dynamic=False, fullgraph=True)
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        common = dict(groups=self.model.bank_groups(), replicated=groups["tok"] + groups["scalar"],
                      adam=self.adam, train=run.train, toggles=t, device=device, mark=mark)
        if not dist_info.distributed:
            self.schedule = LocalSchedule(**common)
        elif t.comm == "ddp":
            self.ddp = nn.parallel.DistributedDataParallel(
                fwd, broadcast_buffers=False,
                device_ids=[dist_info.local_rank] if device.type == "cuda" else None)
            fwd = self.ddp
            if t.ddp_muon == "round_robin":
                self.schedule = RoundRobinDDPSchedule(**common, slots=self.model.matrices_in_layer_order(),
                                                      world_size=dist_info.world_size, rank=dist_info.rank)
            else:
                self.schedule = DDPSchedule(**common)
        else:
            self.schedule = ShardedSchedule(**common, model=self.model, world_size=dist_info.world_size,
                                            rank=dist_info.rank, backend=dist_info.backend)
        self.forward_module = fwd
        self.ema = EMA(self.model, run.train.ema_decay, loop=t.ema == "loop")
        self.autocast = "weights" in t.bf16

    def hyper(self, step: int) -> StepHyper:
        tc = self.run.train
        return StepHyper(lr_multiplier(step, tc.steps, tc.warmdown_steps), muon_momentum(step, tc))

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast)

    def _ddp_graph(self) -> contextlib.AbstractContextManager:
        """Dynamo's DDPOptimizer on or off for the forward: it engages wherever a frame is compiled inside a DDP
        forward (the compiled model here runs inside DDP), so the setting must hold where compiles happen."""
        if self.ddp is None:
            return contextlib.nullcontext()
        return torch._dynamo.config.patch(optimize_ddp=self.run.toggles.ddp_graph == "split")

    def step(self, step: int, loader) -> Tensor:
        """One optimizer step; returns the mean micro-batch loss as a device tensor (no sync)."""
        mark = self.mark
        with mark(phases.STEP):
            with mark(phases.DATA):
                batches = [(x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))
                           for x, y in loader.next_batches()]
            total = torch.zeros((), device=self.device)
            for m, (x, y) in enumerate(batches):
                sync_now = m == len(batches) - 1
                ctx = self.ddp.no_sync() if self.ddp is not None and not sync_now else contextlib.nullcontext()
                with ctx:
                    with mark(phases.FORWARD), self._autocast(), self._ddp_graph():
                        loss = self.forward_module(x, y)
                    with mark(phases.BACKWARD):
                        (loss / len(batches)).backward()
                total += loss.detach().float()
            self.schedule.step(self.hyper(step))
            self.model.zero_grad(set_to_none=True)
            with mark(phases.EMA):
                self.ema.update()
        return total / len(batches)

    @torch.no_grad()
    def evaluate(self, val: Tensor, max_seqs: int | None = None) -> dict[str, float]:
        """Mean val loss over this rank's share of the sequences, averaged across ranks."""
        T = self.run.train.seq_len
        n_seqs = (val.numel() - 1) // T
        if max_seqs is not None:
            n_seqs = min(n_seqs, max_seqs)
        mine = list(range(self.dist.rank, n_seqs, self.dist.world_size))
        bs = self.run.train.micro_batch_seqs
        nll = torch.zeros((), device=self.device, dtype=torch.float64)
        count = torch.zeros((), device=self.device, dtype=torch.float64)
        self.model.eval()
        for i in range(0, len(mine), bs):
            idx = mine[i:i + bs]
            x = torch.stack([val[j * T:(j + 1) * T] for j in idx]).to(self.device)
            y = torch.stack([val[j * T + 1:(j + 1) * T + 1] for j in idx]).to(self.device)
            with self._autocast():  # eager: a compiled module would recompile for the eval shape
                loss = self.model(x, y)
            nll += loss.double() * y.numel()
            count += y.numel()
        self.model.train()
        if self.dist.distributed:
            both = torch.stack([nll, count])
            dist.all_reduce(both)
            nll, count = both[0], both[1]
        loss = float(nll / count) if count > 0 else float("nan")
        return {"val_loss": loss, "val_bits_per_token": loss / math.log(2), "val_tokens": float(count)}
