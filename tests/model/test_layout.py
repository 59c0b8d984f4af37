import torch

from golfprof.model.config import TINY_MODEL
from golfprof.model.gpt import BANK_NAMES, GPT
from golfprof.model.layout import rebank_state_dict, unbank_state_dict


def _batch(cfg, seed=0, B=3, T=24):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (B, T + 1), generator=g)
    return ids[:, :-1], ids[:, 1:]


def _perturb(model, seed=1):
    # Zero-init projections would make half the gradients trivially equal: give every weight values.
    g = torch.Generator().manual_seed(seed)
    for _, p in sorted(model.state_dict().items()):
        p.add_(0.02 * torch.randn(p.shape, generator=g))


def test_same_seed_same_weights_loss_and_grads():
    cfg = TINY_MODEL
    banked, unbanked = GPT(cfg, "banked", seed=7), GPT(cfg, "unbanked", seed=7)
    sd_b = banked.state_dict()
    sd_u = unbanked.state_dict()
    assert unbank_state_dict(sd_b, cfg).keys() == sd_u.keys()
    for k, v in unbank_state_dict(sd_b, cfg).items():
        assert torch.equal(v, sd_u[k]), k
    with torch.no_grad():
        _perturb(banked)
        unbanked.load_state_dict(unbank_state_dict(banked.state_dict(), cfg))
    x, y = _batch(cfg)
    lb, lu = banked(x, y), unbanked(x, y)
    assert abs(lb.item() - lu.item()) <= 1e-6
    lb.backward()
    lu.backward()
    gb = {k: p.grad for k, p in banked.named_parameters()}
    gb = unbank_state_dict(gb, cfg)
    for k, p in unbanked.named_parameters():
        assert (gb[k] - p.grad).abs().max().item() <= 1e-6, k


def test_state_dict_round_trip_is_lossless():
    cfg = TINY_MODEL
    sd = GPT(cfg, "banked", seed=3).state_dict()
    back = rebank_state_dict(unbank_state_dict(sd, cfg), cfg)
    assert back.keys() == sd.keys()
    for k in sd:
        assert torch.equal(back[k], sd[k]), k
    assert all(back[b].shape == sd[b].shape for b in BANK_NAMES)


def test_bank_shapes_of_full_preset():
    from golfprof.model.config import FULL_MODEL
    assert FULL_MODEL.bank_shapes() == {
        "qo_bank": (22, 512, 512), "kv_bank": (22, 256, 512),
        "mlp_up_bank": (11, 1536, 512), "mlp_down_bank": (11, 512, 1536),
    }
    m = GPT(FULL_MODEL, "unbanked", seed=0)
    assert sum(len(v) for v in m.bank_groups().values()) == 66


def test_golf7l_preset_matches_the_record_description():
    from golfprof.model.config import preset
    m, t = preset("golf7l")
    model = GPT(m, "banked", bf16_embeddings=True)
    assert m.num_layers == 7 and m.mlp_dim == 2048 and m.mlp_act == "relu2" and m.rope_base == 50_000
    assert model.bigram.embed.weight.shape == (8192, 128) and model.ve is None
    assert model.tok_emb.weight.dtype == torch.float16
    assert t.tokens_per_step == 131_072 and (t.muon_lr, t.muon_wd, t.tok_lr, t.grad_clip) == (0.035, 0.025, 0.09, 0.3)
    x = torch.randint(0, m.vocab_size, (1, 64))
    assert torch.isfinite(model(x, x))
