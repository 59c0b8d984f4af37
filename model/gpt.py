"""The parameter-golf record GPT, in either weight layout.

Both layouts run the exact same forward code: `GPT.layer_weights(i)` hands each block its six
matrices either as views into the four banks or as the block's own parameters. Initial values
are drawn in one layout-independent order, so a seed gives identical weights, losses and
gradients in both layouts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import ce_triton, mlp_triton
from . import fp8 as FP8
from .attention import causal_attention
from .config import ModelConfig

BANK_NAMES = ("qo_bank", "kv_bank", "mlp_up_bank", "mlp_down_bank")
# the bank of each of a layer's Muon matrices, in the order of its own parameters: q, k, v, o, up, down
LAYER_MATRIX_BANKS = ("qo_bank", "kv_bank", "kv_bank", "qo_bank", "mlp_up_bank", "mlp_down_bank")

# (bank, unbanked sub-module path, slot offset in units of num_layers)
BANK_SLOTS: dict[str, tuple[tuple[str, int], ...]] = {
    "qo_bank": (("attn.c_q", 0), ("attn.proj", 1)),
    "kv_bank": (("attn.c_k", 0), ("attn.c_v", 1)),
    "mlp_up_bank": (("mlp.fc", 0),),
    "mlp_down_bank": (("mlp.proj", 0),),
}

# Control tensors stay fp32 and go to the scalar Adam group, as in the record.
TOK_PARAMS = ("tok_emb.weight", "bigram.embed.weight", "ve.embed.weight")


def unbanked_name(bank: str, index: int, num_layers: int) -> str:
    """State-dict key of bank slice `index` in the unbanked layout."""
    slots = BANK_SLOTS[bank]
    slot, layer = divmod(index, num_layers)
    return f"blocks.{layer}.{slots[slot][0]}.weight"


def init_bank_tensors(cfg: ModelConfig, gen: torch.Generator) -> dict[str, Tensor]:
    """Orthogonal Q, K, V and MLP-up slices; zero output and MLP-down (zero-init projections)."""
    banks = {name: torch.zeros(shape) for name, shape in cfg.bank_shapes().items()}
    L = cfg.num_layers
    for i in range(L):
        for bank, idx in (("qo_bank", i), ("kv_bank", i), ("kv_bank", L + i), ("mlp_up_bank", i)):
            nn.init.orthogonal_(banks[bank][idx], generator=gen)
    return banks


class Linear(nn.Module):
    """A bare weight holder for the unbanked layout (forward goes through GPT.layer_weights)."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)


class BigramHash(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.buckets = cfg.bigram_buckets
        self.embed = nn.Embedding(cfg.bigram_buckets, cfg.bigram_dim)
        self.proj = nn.Linear(cfg.bigram_dim, cfg.model_dim, bias=False)
        self.scale = nn.Parameter(torch.tensor(0.05))

    def reset(self, gen: torch.Generator) -> None:
        nn.init.zeros_(self.embed.weight)
        # The record's _init_weights override turns this projection orthogonal (not zero).
        nn.init.orthogonal_(self.proj.weight, generator=gen)

    def forward(self, ids: Tensor) -> Tensor:
        t = ids.to(torch.int32)  # the record's form: int32 arithmetic, the first position set apart
        mod = self.buckets - 1
        h = torch.empty_like(t)
        h[..., 0] = mod
        h[..., 1:] = torch.bitwise_xor(36313 * t[..., 1:], 27191 * t[..., :-1]) % mod
        e = self.embed(h.long())
        return F.linear(e, self.proj.weight.to(e.dtype)) * self.scale.to(e.dtype)


class ValueEmbedding(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.ve_dim)
        self.proj = nn.Linear(cfg.ve_dim, cfg.kv_dim, bias=False)
        self.scale = nn.Parameter(torch.tensor(0.1))
        # one (1,)-shaped scale per layer, as the record's ParameterList: a slice of one vector instead adds a
        # select_scatter and a full reduction per layer to the compiled backward
        self.layer_scales = nn.ParameterList(nn.Parameter(torch.ones(1)) for _ in cfg.ve_layers)

    def reset(self, gen: torch.Generator) -> None:
        nn.init.normal_(self.embed.weight, std=0.01, generator=gen)
        nn.init.orthogonal_(self.proj.weight, generator=gen)

    def forward(self, ids: Tensor) -> Tensor:
        e = self.embed(ids)
        return F.linear(e, self.proj.weight.to(e.dtype)) * self.scale.to(e.dtype)


class Block(nn.Module):
    """Per-layer control tensors; in the unbanked layout also the six linear weights."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        d = cfg.model_dim
        self.layer = layer
        self.ln_scale = 1.0 / math.sqrt(layer + 1)
        self.attn_scale = nn.Parameter(torch.ones(d))
        self.mlp_scale = nn.Parameter(torch.ones(d))
        self.resid_mix = nn.Parameter(torch.stack([torch.ones(d), torch.zeros(d)]))
        self.q_gain = nn.Parameter(torch.full((cfg.num_heads,), cfg.qk_gain_init))


def rms_norm(x: Tensor) -> Tensor:
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(cfg: ModelConfig, T: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """cos/sin for partial RoPE; beyond rope_train_seq_len the record's NTK base rescale applies."""
    r = cfg.rope_dims
    base = cfg.rope_base
    if T > cfg.rope_train_seq_len:
        base = base * (T / cfg.rope_train_seq_len) ** (r / (r - 2))
    inv_freq = 1.0 / (base ** (torch.arange(0, r, 2, device=device, dtype=torch.float32) / r))
    freqs = torch.outer(torch.arange(T, device=device, dtype=torch.float32), inv_freq)
    return freqs.cos().to(dtype)[None, :, None, :], freqs.sin().to(dtype)[None, :, None, :]


def apply_partial_rope(x: Tensor, cos: Tensor, sin: Tensor, rope_dims: int) -> Tensor:
    """Rotate-half RoPE on the first rope_dims of each head, in the tables' dtype."""
    rot, rest = x[..., :rope_dims], x[..., rope_dims:]
    rot = rot.to(cos.dtype)
    half = rope_dims // 2
    x1, x2 = rot[..., :half], rot[..., half:]
    # the record's expression term for term, so that inductor fuses RoPE's backward as it does the record's
    y = torch.cat((x1 * cos + x2 * sin, x1 * (-sin) + x2 * cos), dim=-1).to(x.dtype)
    return torch.cat((y, rest), dim=-1)


class GPT(nn.Module):
    def __init__(
        self,
        cfg: ModelConfig,
        layout: str = "banked",
        seed: int = 1337,
        bf16_embeddings: bool = False,
        bf16_rotary: bool = False,
        attention: str = "sdpa",
        mlp_kernel: str = "inductor",
        ce_kernel: str = "inductor",
        fp8: str = "off",
    ) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.layout = layout
        self.bf16_rotary = bf16_rotary
        # a backend resolve_backend returned for the run's device (the Trainer resolves the toggle)
        self.attention = attention
        self._rope: dict[tuple[int, str], list[tuple[Tensor, Tensor]]] = {}  # rotary(): made once per length
        # the kernels that run (model/kernel_choice.py resolves the toggles; the Triton / FP8 paths are bf16)
        self.mlp_kernel, self.ce_kernel, self.fp8 = mlp_kernel, ce_kernel, fp8
        gen = torch.Generator().manual_seed(seed)
        L = cfg.num_layers

        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        nn.init.normal_(self.tok_emb.weight, std=cfg.tok_emb_std, generator=gen)
        self.bigram = BigramHash(cfg)
        self.bigram.reset(gen)
        self.ve = ValueEmbedding(cfg) if cfg.ve_layers else None
        if self.ve is not None:
            self.ve.reset(gen)
        self.smear_gate = nn.Parameter(torch.zeros(cfg.model_dim))
        self.skip_weights = nn.Parameter(torch.ones(cfg.num_skip_weights, cfg.model_dim))
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(L))

        banks = init_bank_tensors(cfg, gen)
        if layout == "banked":
            for name, t in banks.items():
                self.register_parameter(name, nn.Parameter(t))
        elif layout == "unbanked":
            for bank, t in banks.items():
                for idx in range(t.shape[0]):
                    path = unbanked_name(bank, idx, L).removesuffix(".weight").split(".")
                    parent: nn.Module = self.blocks[int(path[1])]
                    for part in path[2:-1]:
                        if not hasattr(parent, part):
                            parent.add_module(part, nn.Module())
                        parent = getattr(parent, part)
                    parent.add_module(path[-1], Linear(t[idx].clone()))
        else:
            raise ValueError(f"unknown layout {layout!r}")

        if fp8 != "off":  # delayed-scaling amax histories, not state: left out of state_dict (and the EMA)
            self.register_buffer("fp8_mlp_hist", FP8.new_history(2 * L).view(L, 2, 2, -1), persistent=False)
            self.register_buffer("fp8_head_hist", FP8.new_history(1)[0], persistent=False)
        if bf16_embeddings:
            low = getattr(torch, cfg.embedding_dtype)
            named = dict(self.named_parameters())
            for name in TOK_PARAMS:
                if name in named:
                    named[name].data = named[name].data.to(low)

    # ---- weight access shared by both layouts -------------------------------------------------
    def bank_groups(self) -> dict[str, list[nn.Parameter]]:
        """Muon's work list: per bank, one 3-D parameter (banked) or its matrices in slice order."""
        if self.layout == "banked":
            return {name: [getattr(self, name)] for name in BANK_NAMES}
        L = self.cfg.num_layers
        return {
            bank: [self.get_parameter(unbanked_name(bank, i, L)) for i in range(shape[0])]
            for bank, shape in self.cfg.bank_shapes().items()
        }

    def layer_weights(self, i: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        L = self.cfg.num_layers
        if self.layout == "banked":
            return (self.qo_bank[i], self.kv_bank[i], self.kv_bank[L + i],
                    self.qo_bank[L + i], self.mlp_up_bank[i], self.mlp_down_bank[i])
        b = self.blocks[i]
        return (b.attn.c_q.weight, b.attn.c_k.weight, b.attn.c_v.weight,
                b.attn.proj.weight, b.mlp.fc.weight, b.mlp.proj.weight)

    def layer_slots(self, i: int) -> tuple[tuple[nn.Parameter, int | None], ...]:
        """(parameter, slice index or None) of layer i's q, k, v, o, up, down: where the
        optimizer reads grads and writes updates (`.grad` of a bank view does not exist)."""
        L = self.cfg.num_layers
        if self.layout == "banked":
            return ((self.qo_bank, i), (self.kv_bank, i), (self.kv_bank, L + i),
                    (self.qo_bank, L + i), (self.mlp_up_bank, i), (self.mlp_down_bank, i))
        return tuple((w, None) for w in self.layer_weights(i))  # type: ignore[misc]

    def matrices_in_layer_order(self) -> list[tuple[tuple[nn.Parameter, int | None], str]]:
        """Every Muon matrix as (slot, its bank's name), layer by layer (q, k, v, o, up, down): the order of a
        block's own parameters, in which #315 dealt matrices out to ranks."""
        return [(slot, bank) for i in range(self.cfg.num_layers)
                for slot, bank in zip(self.layer_slots(i), LAYER_MATRIX_BANKS)]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """matrix (Muon), tok (Adam, embedding lr) and scalar (Adam) groups."""
        matrix_ids = {id(p) for ps in self.bank_groups().values() for p in ps}
        named = dict(self.named_parameters())
        tok = [named[n] for n in TOK_PARAMS if n in named]
        tok_ids = {id(p) for p in tok}
        scalar = [p for p in named.values() if id(p) not in matrix_ids and id(p) not in tok_ids]
        matrix = [p for ps in self.bank_groups().values() for p in ps]
        return {"matrix": matrix, "tok": tok, "scalar": scalar}

    # ---- forward --------------------------------------------------------------------------------
    def _attention(self, blk: Block, h: Tensor, wq: Tensor, wk: Tensor, wv: Tensor, wo: Tensor,
                   ve: Tensor | None, cos: Tensor, sin: Tensor, xsa: bool) -> Tensor:
        cfg = self.cfg
        B, T, _ = h.shape
        hd, H, Hkv = cfg.head_dim, cfg.num_heads, cfg.num_kv_heads
        q = F.linear(h, wq.to(h.dtype)).view(B, T, H, hd)
        k = F.linear(h, wk.to(h.dtype)).view(B, T, Hkv, hd)
        v = F.linear(h, wv.to(h.dtype))
        if ve is not None:
            v = v + ve
        v = v.view(B, T, Hkv, hd)
        q, k = rms_norm(q), rms_norm(k)
        if self.bf16_rotary:  # the record's cast of its fp32 tables to q's dtype, once per layer; off: fp32 RoPE
            cos, sin = cos.to(q.dtype), sin.to(q.dtype)
        q = apply_partial_rope(q, cos, sin, cfg.rope_dims)
        k = apply_partial_rope(k, cos, sin, cfg.rope_dims)
        q = q * blk.q_gain.to(q.dtype)[None, None, :, None]
        y = causal_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), self.attention).transpose(1, 2)
        if xsa:
            # Remove each head's component along its own (normalised) value: reshape, no repeat.
            y = y.reshape(B, T, Hkv, H // Hkv, hd)
            vn = F.normalize(v, dim=-1).unsqueeze(3)
            y = y - (y * vn).sum(-1, keepdim=True) * vn
        return F.linear(y.reshape(B, T, H * hd), wo.to(h.dtype))

    def _mlp(self, h: Tensor, wup: Tensor, wdown: Tensor, layer: int) -> Tensor:
        slope = self.cfg.leaky_slope if self.cfg.mlp_act == "leaky_relu2" else 0.0
        if self.fp8 != "off" or self.mlp_kernel == "triton_fused":
            return self._mlp_kernels(h.to(torch.bfloat16), wup.to(torch.bfloat16), wdown.to(torch.bfloat16),
                                     slope, layer)
        u = F.linear(h, wup.to(h.dtype))
        if self.cfg.mlp_act == "leaky_relu2":
            u = F.leaky_relu(u, self.cfg.leaky_slope)
        else:
            u = F.relu(u)
        return F.linear(u.square(), wdown.to(h.dtype))

    def _mlp_kernels(self, h: Tensor, wup: Tensor, wdown: Tensor, slope: float, layer: int) -> Tensor:
        """The toggled MLP paths, on bf16 operands: FP8 forward (fused or autograd backward) or the fused kernels."""
        if self.fp8 == "off":
            return mlp_triton.mlp(h, wup, wdown, slope)
        hist = self.fp8_mlp_hist[layer]
        if self.mlp_kernel == "triton_fused":
            return FP8.mlp_fused_backward(h, wup, wdown, hist, slope)
        u = F.leaky_relu(FP8.linear(h, wup, hist[0], dx_fp8=True), slope)  # dx in FP8
        return FP8.linear(u.square(), wdown, hist[1])  # the down-projection's backward in bf16

    def rotary(self, T: int, device: torch.device) -> list[tuple[Tensor, Tensor]]:
        """Each layer's fp32 cos/sin for length T, made once. The record caches them on every layer's module, so that
        under torch.compile they are graph inputs, one pair per layer: made inside the graph, inductor recomputed
        them in every RoPE kernel; one pair shared by all layers let the graph's CSE merge the layers' `-sin` into
        one node, and inductor then fused RoPE's backward differently from the record's. Call it before the first
        compiled forward (the trainer does) so the compiled graph finds them."""
        key = (T, str(device))
        if key not in self._rope:
            with torch.no_grad():
                cos, sin = rotary_tables(self.cfg, T, device, torch.float32)
                self._rope[key] = [(cos.clone(), sin.clone()) for _ in range(self.cfg.num_layers)]
        return self._rope[key]

    def hidden(self, ids: Tensor) -> Tensor:
        cfg = self.cfg
        T = ids.size(1)
        x = self.tok_emb(ids) + self.bigram(ids)
        x = rms_norm(x)
        g = torch.sigmoid(self.smear_gate.to(x.dtype))[None, None, :]
        x_prev = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)  # the record's order of ops
        x = (1 - g) * x + g * x_prev
        x0 = x
        tables = self.rotary(T, ids.device)
        ve_base: Tensor | None = None  # made at its first layer, where the record makes it
        ve_slot = {layer: k for k, layer in enumerate(cfg.ve_layers)}
        skips: list[Tensor] = []
        n_enc = cfg.num_encoder_layers
        for i, blk in enumerate(self.blocks):
            if i >= n_enc and i - n_enc < cfg.num_skip_weights:
                x = x + self.skip_weights[i - n_enc].to(x.dtype)[None, None, :] * skips.pop()
            ve = None
            if self.ve is not None and i in ve_slot:
                ve_base = self.ve(ids) if ve_base is None else ve_base
                ve = ve_base * self.ve.layer_scales[ve_slot[i]].to(ve_base.dtype)
            wq, wk, wv, wo, wup, wdown = self.layer_weights(i)
            m = blk.resid_mix.to(x.dtype)
            x_in = m[0][None, None, :] * x + m[1][None, None, :] * x0
            xsa = i >= cfg.num_layers - cfg.xsa_last_n
            a = self._attention(blk, rms_norm(x_in) * blk.ln_scale, wq, wk, wv, wo, ve, *tables[i], xsa)
            x = x_in + blk.attn_scale.to(x.dtype)[None, None, :] * a
            x = x + blk.mlp_scale.to(x.dtype)[None, None, :] * self._mlp(rms_norm(x) * blk.ln_scale, wup, wdown, i)
            if i < n_enc:
                skips.append(x)
        return rms_norm(x)

    def raw_logits(self, ids: Tensor) -> Tensor:
        """The LM head's output before the softcap (bf16 under autocast or FP8; fp32 otherwise)."""
        x = self.hidden(ids)
        if self.fp8 == "mlp_head":
            return FP8.linear(x.to(torch.bfloat16), self.tok_emb.weight.to(torch.bfloat16), self.fp8_head_hist,
                              dx_fp8=True)
        return F.linear(x, self.tok_emb.weight.to(x.dtype))

    def logits(self, ids: Tensor) -> Tensor:
        """Softcapped logits in the head's dtype: bf16 under autocast, where the record softcaps too (an fp32
        softcap gave the compiled backward other kernels than the record's)."""
        z = self.raw_logits(ids)
        c = self.cfg.logit_softcap
        return c * torch.tanh(z / c)

    def forward(self, ids: Tensor, targets: Tensor) -> Tensor:
        if self.ce_kernel == "triton_fused" and self.training and torch.is_grad_enabled():
            # training only: its forward writes the gradient too
            return ce_triton.cross_entropy(self.raw_logits(ids), targets, self.cfg.logit_softcap)
        z = self.logits(ids)
        return F.cross_entropy(z.view(-1, z.size(-1)).float(), targets.reshape(-1))
