"""profiler/script_hooks.py: steps and phases of a foreign training loop, found by hooks alone (in this process)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from golfprof.profiler import names
from golfprof.profiler.phases import PhaseClock
from golfprof.profiler.script_hooks import StepFn, StepTracker, StopScript, installed


def _tracker(stop_after: int | None = None) -> StepTracker:
    return StepTracker(PhaseClock(torch.device("cpu")), stop_after=stop_after)


def _phases_of(t: StepTracker, step: int) -> list[str]:
    return [r["phase"] for r in t.phase_rows if r["step"] == step]


def _loop(model: nn.Module, opts: list, iters: int, accum: int = 1, eval_every: int = 0) -> None:
    for it in range(iters):
        if eval_every and it % eval_every == 0:
            with torch.no_grad():
                model(torch.randn(2, 8))
        for _ in range(accum):
            (model(torch.randn(2, 8)).pow(2).mean() / accum).backward()
        for o in opts:
            o.step()
            o.zero_grad()


def test_adamw_with_gradient_accumulation_gives_one_step_per_iteration_with_every_phase():
    model = nn.Linear(8, 1)
    t = _tracker()
    with installed(t):
        _loop(model, [torch.optim.AdamW(model.parameters())], iters=5, accum=3)
    t.finish()
    assert t.steps == 5 and t.per_iteration == 1  # the fifth ends at its optimizer step, the count known by then
    assert [(r["forwards"], r["backwards"], r["optimizer_steps"]) for r in t.rows] == [(3, 3, 1)] * 5
    later = _phases_of(t, 3)
    assert later.count(names.FORWARD) == 3 and later.count(names.BACKWARD) == 3
    assert {names.STEP, names.DATA, names.OPTIMIZER, names.optimizer_step("AdamW")} <= set(later)
    assert names.DATA not in _phases_of(t, 0)  # step 0 begins at its first forward: no step ended before it
    assert all(r["loss"] == r["loss"] and r["ms"] > 0 for r in t.rows)  # the backward scalars summed, a duration


def test_validation_forwards_under_no_grad_are_not_training_forwards():
    model = nn.Linear(8, 1)
    t = _tracker()
    with installed(t):
        _loop(model, [torch.optim.SGD(model.parameters(), lr=0.1)], iters=6, accum=2, eval_every=2)
    t.finish()
    assert t.steps == 6 and all(r["forwards"] == 2 for r in t.rows)
    # iteration 0's validation precedes every step (unmarked); those of iterations 2 and 4 fall in their data phase
    assert [s for s in range(6) if names.EVAL_FORWARD in _phases_of(t, s)] == [2, 4]


def test_two_optimizers_per_iteration_end_the_step_at_the_second():
    model = nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 1))
    adam = torch.optim.Adam(model[0].parameters())
    sgd = torch.optim.SGD(model[1].parameters(), lr=0.1)
    t = _tracker()
    with installed(t):
        _loop(model, [adam, sgd], iters=4)
    t.finish()
    assert t.per_iteration == 2 and t.steps == 4
    assert all(r["optimizer_steps"] == 2 for r in t.rows)
    assert {names.optimizer_step("Adam"), names.optimizer_step("SGD")} <= set(_phases_of(t, 2))
    assert _phases_of(t, 2).count(names.OPTIMIZER) == 2


def test_steps_stop_the_script_at_the_boundary_asked_for():
    model = nn.Linear(8, 1)
    opt = torch.optim.Adam(model.parameters())
    calls = []
    t = _tracker(stop_after=3)
    t.after_step.append(calls.append)
    with installed(t), pytest.raises(StopScript):
        for _ in range(10):
            model(torch.randn(2, 8)).sum().backward()
            opt.step()
    t.finish()
    assert t.steps == 3 and calls == [0, 1, 2]
    assert int(opt.state[model.weight]["step"]) == 3  # stopped as the third optimizer step returned
    assert not hasattr(torch.Tensor.backward, "__wrapped__")  # the hooks are gone once uninstalled


def test_a_plain_class_optimizer_is_found_through_step_fn_and_nested_steps_count_once():
    model = nn.Linear(8, 1)
    t = _tracker()
    with installed(t, [StepFn(None, "Plain", "step")]):
        class Plain:  # defined while installed, as a script defines its own: wrapped as the class is created
            def __init__(self, params):
                self.inner = torch.optim.SGD(params, lr=0.1)

            def step(self):
                self.inner.step()  # a torch optimizer inside: nested, not a second optimizer step

        plain = Plain(model.parameters())
        for _ in range(4):
            model(torch.randn(2, 8)).sum().backward()
            plain.step()
    t.finish()
    assert t.steps == 4 and t.per_iteration == 1
    assert {names.optimizer_step("Plain"), names.optimizer_step("SGD")} <= set(_phases_of(t, 2))


def test_a_model_compiled_with_fullgraph_runs_under_the_hooks():
    torch._dynamo.reset()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")  # a graph break would raise here
    t = _tracker()
    with installed(t):
        _loop(compiled, [torch.optim.AdamW(model.parameters())], iters=3, accum=2)
    t.finish()
    torch._dynamo.reset()
    assert t.steps == 3 and [r["forwards"] for r in t.rows] == [2, 2, 2]  # the compiled call once, not its graph


def test_module_calls_without_trainable_parameters_or_inside_backward_are_not_forwards():
    model = nn.Linear(8, 1)
    transform = nn.Sequential(nn.ReLU())  # a parameter-free module run on the batch
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    t = _tracker()
    with installed(t):
        for _ in range(3):
            x = transform(torch.randn(2, 8))
            y = torch.utils.checkpoint.checkpoint(model, x, use_reentrant=False)  # recomputed inside backward
            y.sum().backward()
            opt.step()
    t.finish()
    assert [r["forwards"] for r in t.rows] == [1, 1, 1]


def test_step_fn_that_matches_no_class_wraps_nothing():
    s = StepFn("some_module", "Missing", "step")
    t = _tracker()
    with installed(t, [s]):
        class Missing:  # the module differs: not the class named
            def step(self):
                pass
    assert s.wrapped == [] and s.text == "some_module:Missing.step"


def test_golfprof_s_own_work_between_steps_is_in_no_step_and_readings_join_the_row():
    """An after-step hook (the profiler's step: its trace export) that takes 50 ms lands in neither step: the
    next step starts after it (it used to start where the last ended, so the step after the profiler window paid
    the export). A sampler's reading joins the step's row."""
    import time

    model = nn.Linear(8, 1)
    t = _tracker()
    t.after_step.append(lambda step: time.sleep(0.05) if step == 1 else None)
    t.samplers.append(lambda: {"gpu_sm_clock_mhz": 1980.0, "gpu_throttled": False})
    with installed(t):
        _loop(model, [torch.optim.SGD(model.parameters(), lr=0.1)], iters=4)
    t.finish()
    assert t.steps == 4 and max(r["ms"] for r in t.rows) < 40, [r["ms"] for r in t.rows]
    assert all(r["gpu_sm_clock_mhz"] == 1980.0 and r["gpu_throttled"] is False for r in t.rows)
