"""An explicit reduce-scatter / all-gather schedule, as the Parallel-Muon records run theirs: a torch.optim
optimizer whose step() reduce-scatters the flat gradient in bf16, updates this rank's shard, and all-gathers the
updated parameters (async, waited at once). Parameters: 128 + 8 + 32 + 4 = 172 floats. Written for golfprof's
tests; it knows nothing of golfprof."""

import os

import torch
import torch.distributed as dist
import torch.nn as nn

ITERS = int(os.environ.get("ITERS", "5"))


class ShardedSGD(torch.optim.Optimizer):
    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self):
        params = [p for g in self.param_groups for p in g["params"]]
        world = dist.get_world_size() if dist.is_initialized() else 1
        rank = dist.get_rank() if dist.is_initialized() else 0
        flat_grad = torch.cat([p.grad.flatten() for p in params]).to(torch.bfloat16)
        flat = torch.cat([p.flatten() for p in params])
        n = flat.numel() // world
        shard_grad = torch.empty(n, dtype=torch.bfloat16)
        if world > 1:
            dist.reduce_scatter_tensor(shard_grad, flat_grad)
            shard_grad.div_(world)
        else:
            shard_grad.copy_(flat_grad)
        shard = flat[rank * n:(rank + 1) * n] - self.param_groups[0]["lr"] * shard_grad.float()
        if world > 1:
            dist.all_gather_into_tensor(flat, shard, async_op=True).wait()
        else:
            flat = shard
        offset = 0
        for p in params:
            p.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()


def main():
    if "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 4))
    opt = ShardedSGD(model.parameters(), lr=0.1)
    for _ in range(ITERS):
        loss = model(torch.randn(8, 16)).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
