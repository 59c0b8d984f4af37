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
