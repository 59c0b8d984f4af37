"""A non-finite loss ends a run with one error line and exit 1 (issue 28 class 8), never a traceback."""

from __future__ import annotations

import torch

from golfprof.model import train as T
from tests.cli import invoke


def test_a_nan_loss_is_one_error_line_exit_1(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = T.Trainer.step

    def nan_at_step_2(self, step, loader):  # noqa: ANN001, ANN202 - the trainer's own signature
        loss = real(self, step, loader)
        return torch.tensor(float("nan")) if step == 2 else loss

    monkeypatch.setattr(T.Trainer, "step", nan_at_step_2)
    r = invoke("train", "--preset", "tiny", "--steps", "4", "--compile", "off", "--profile-steps", "off", "--quiet")
    assert r.exit_code == 1, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert errors == ["error: loss became nan at step 2: lower the learning rates, or try --bf16 none"], r.output
