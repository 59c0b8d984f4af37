"""A trainer that raises in its iteration CRASH_AT (default 3), after that iteration's forward.
Written for golfprof's tests; it knows nothing of golfprof."""

import os

import torch
import torch.nn as nn

CRASH_AT = int(os.environ.get("CRASH_AT", "3"))


def check_loss(loss, it):
    if it == CRASH_AT:
        raise ValueError(f"loss check failed at iteration {it}")


def main():
    model = nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for it in range(10):
        loss = model(torch.randn(4, 8)).pow(2).mean()
        check_loss(loss, it)
        loss.backward()
        opt.step()
        opt.zero_grad()


if __name__ == "__main__":
    main()
