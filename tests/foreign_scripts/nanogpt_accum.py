"""A nanoGPT-like trainer, as a user writes one: AdamW, gradient accumulation, validation under no_grad, and DDP
over gloo when launched with RANK and WORLD_SIZE set (torchrun). Configured by environment variables, like the
records: ITERS, ACCUM, EVAL_EVERY, BATCH, SEQ. Written for golfprof's tests; it knows nothing of golfprof."""

import os
import sys

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

ITERS = int(os.environ.get("ITERS", "6"))
ACCUM = int(os.environ.get("ACCUM", "2"))
EVAL_EVERY = int(os.environ.get("EVAL_EVERY", "0"))
BATCH, SEQ, VOCAB, DIM = int(os.environ.get("BATCH", "4")), int(os.environ.get("SEQ", "16")), 64, 32


class TinyGPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, DIM)
        self.mix = nn.Linear(DIM, DIM)
        self.norm = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, VOCAB, bias=False)

    def forward(self, idx, targets):
        x = self.wte(idx)
        x = x + torch.cumsum(F.gelu(self.mix(x)), dim=1) / (1 + torch.arange(idx.size(1)))[None, :, None]
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


def batch(gen):
    data = torch.randint(0, VOCAB, (BATCH, SEQ + 1), generator=gen)
    return data[:, :-1], data[:, 1:]


def main():
    print(f"nanogpt_accum: args {sys.argv[1:]}", flush=True)
    distributed = "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if distributed else 0
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1 + rank)
    raw = TinyGPT()
    model = nn.parallel.DistributedDataParallel(raw) if distributed else raw
    opt = torch.optim.AdamW(raw.parameters(), lr=1e-3)
    for it in range(ITERS):
        if EVAL_EVERY and it % EVAL_EVERY == 0:
            model.eval()
            with torch.no_grad():
                val = sum(model(*batch(gen)) for _ in range(2)) / 2
            if distributed:
                dist.all_reduce(val)
            model.train()
        for micro in range(ACCUM):
            x, y = batch(gen)
            last = micro == ACCUM - 1
            if distributed and not last:
                with model.no_sync():
                    (model(x, y) / ACCUM).backward()
            else:
                (model(x, y) / ACCUM).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if rank == 0:
            print(f"iter {it} done", flush=True)
    if distributed:
        dist.destroy_process_group()
    print("nanogpt_accum: finished", flush=True)


if __name__ == "__main__":
    main()
