"""A trainer whose attention comes from FlashAttention-3's interface, as the parameter-golf records import it
(`from flash_attn_interface import flash_attn_func`, (B, T, H, D) tensors, causal). Where FA3 is not installed,
golfprof gives it a shim. Written for golfprof's tests; it knows nothing of golfprof."""

import torch
import torch.nn as nn
from flash_attn_interface import flash_attn_func


class Attention(nn.Module):
    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        return self.out(flash_attn_func(q, k, v, causal=True).reshape(b, t, d))


def main():
    torch.manual_seed(0)
    model = Attention()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(4):
        model(torch.randn(2, 8, 32)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()


if __name__ == "__main__":
    main()
