"""A trainer whose optimizer is a plain class (not a torch.optim.Optimizer), as modded-nanogpt's is: its step()
all-reduces every gradient explicitly, one dist.all_reduce per parameter, then applies SGD. golfprof finds its
steps only when told: --step-fn PlainSGD.step. Written for golfprof's tests; it knows nothing of golfprof."""

import os

import torch
import torch.distributed as dist
import torch.nn as nn

ITERS = int(os.environ.get("ITERS", "5"))


class PlainSGD:
    def __init__(self, params, lr):
        self.params = list(params)
        self.lr = lr

    @torch.no_grad()
    def step(self):
        world = dist.get_world_size() if dist.is_initialized() else 1
        for p in self.params:
            if world > 1:
                dist.all_reduce(p.grad)
                p.grad.div_(world)
            p.add_(p.grad, alpha=-self.lr)

    def zero_grad(self):
        for p in self.params:
            p.grad = None


def main():
    if "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 4))  # params: 128, 8, 32, 4 floats
    opt = PlainSGD(model.parameters(), lr=0.1)
    for _ in range(ITERS):
        x = torch.randn(8, 16)
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
