"""A model compiled with torch.compile(fullgraph=True), which fails on any graph break, trained with AdamW.
BACKEND picks the compiler backend (default aot_eager: Dynamo traces everything, as for inductor, without the
kernel compile time). Written for golfprof's tests; it knows nothing of golfprof."""

import os

import torch
import torch.nn as nn

ITERS = int(os.environ.get("ITERS", "5"))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(16, 32)
        self.down = nn.Linear(32, 16)

    def forward(self, x):
        return x + self.down(torch.relu(self.up(x)))


def main():
    torch.manual_seed(0)
    model = nn.Sequential(Block(), Block(), nn.Linear(16, 1))
    compiled = torch.compile(model, fullgraph=True, backend=os.environ.get("BACKEND", "aot_eager"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(ITERS):
        loss = compiled(torch.randn(4, 16)).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    print("compiled_model: finished", flush=True)


if __name__ == "__main__":
    main()
