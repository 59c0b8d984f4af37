import math

import torch

from golfprof.model.config import TINY_MODEL, TINY_TRAIN, RunConfig, Toggles
from golfprof.model.data import DistributedLoader, load_validation
from golfprof.model.synthetic import write_synthetic_dataset
from golfprof.model.train import Trainer


def test_loss_falls_on_tiny_over_50_steps(tmp_path):
    paths = write_synthetic_dataset(tmp_path, TINY_MODEL.vocab_size, 50 * TINY_TRAIN.tokens_per_step + 1,
                                    TINY_TRAIN.val_tokens, seed=0)
    run = RunConfig("tiny", TINY_MODEL, TINY_TRAIN, Toggles(bf16=(), compile="off"), "explicit_banks")
    trainer = Trainer(run, torch.device("cpu"))
    loader = DistributedLoader(paths["train"], TINY_TRAIN.seq_len, TINY_TRAIN.micro_batch_seqs, trainer.grad_accum)
    val = load_validation(paths["val"], TINY_TRAIN.seq_len, TINY_TRAIN.val_tokens)
    before = trainer.evaluate(val)["val_loss"]
    losses = [float(trainer.step(s, loader)) for s in range(TINY_TRAIN.steps)]
    after = trainer.evaluate(val)
    assert math.isclose(before, math.log(TINY_MODEL.vocab_size), rel_tol=0.05)
    # the synthetic chain's entropy is the floor; 50 steps must get most of the way there
    floor_nats = paths["entropy_bits_per_token"] * math.log(2)
    assert after["val_loss"] < floor_nats + 0.5 * (before - floor_nats)
    assert sum(losses[-5:]) / 5 < losses[0] - 1.5
    assert math.isclose(after["val_bits_per_token"], after["val_loss"] / math.log(2))


def test_the_ddp_graph_toggle_holds_where_the_forward_compiles(tmp_path, monkeypatch):
    """Dynamo's DDPOptimizer engages wherever a frame compiles inside a DDP forward: the toggle's setting must
    hold there (a compile happens at the first forward, a recompile at any later one)."""
    import pytest

    from golfprof.ablations.simulate import fake_world
    from golfprof.errors import ConfigError
    from golfprof.model.gpt import GPT
    from golfprof.model.train import DistInfo
    from golfprof.profiler.collectives import Recorder, register_ddp_hook

    paths = write_synthetic_dataset(tmp_path, TINY_MODEL.vocab_size, 4 * TINY_TRAIN.tokens_per_step + 1,
                                    TINY_TRAIN.val_tokens, seed=0)
    seen: list[object] = []
    forward = GPT.forward

    def spy(self, ids, targets):
        seen.append(torch._dynamo.config.optimize_ddp)
        return forward(self, ids, targets)

    monkeypatch.setattr(GPT, "forward", spy)
    for graph, expected in (("split", True), ("whole", False)):
        seen.clear()
        run = RunConfig("tiny", TINY_MODEL, TINY_TRAIN, Toggles(comm="ddp", ddp_graph=graph, bf16=(), compile="off"),
                        "ddp_banks")
        with fake_world(2, 0):
            rec = Recorder()
            with rec.installed():
                trainer = Trainer(run, torch.device("cpu"), DistInfo(2, 0, 0, "gloo"))
                register_ddp_hook(trainer.ddp, rec)
                loader = DistributedLoader(paths["train"], TINY_TRAIN.seq_len, TINY_TRAIN.micro_batch_seqs,
                                           trainer.grad_accum, 2, 0)
                trainer.step(0, loader)
        assert seen and all(s is expected for s in seen), (graph, seen)
    assert torch._dynamo.config.optimize_ddp is True  # left as torch's default outside the forward
    with pytest.raises(ConfigError, match="ddp_graph 'halved' is not one of: split, whole"):
        Toggles(ddp_graph="halved").validate()


def test_the_ema_toggle_reaches_the_trainers_average():
    def loop(ema: str) -> bool:
        run = RunConfig("tiny", TINY_MODEL, TINY_TRAIN, Toggles(bf16=(), compile="off", ema=ema), "explicit_banks")
        return Trainer(run, torch.device("cpu")).ema.loop

    assert loop("loop") and not loop("foreach")
