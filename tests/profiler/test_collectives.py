"""profiler/collectives.py: the collectives a foreign script may issue, recorded with their sizes (fake world)."""

from __future__ import annotations

import torch
import torch.distributed as dist

from golfprof.ablations.simulate import fake_world
from golfprof.profiler.collectives import Recorder


def test_list_forms_all_to_all_and_positional_arguments_are_recorded():
    rec = Recorder()
    with fake_world(2, 0), rec.installed():
        t = torch.zeros(6)
        dist.all_gather([torch.zeros(6), torch.zeros(6)], t)  # output list: 2 x 24 bytes
        dist.reduce_scatter(torch.zeros(3, dtype=torch.bfloat16), [torch.zeros(3, dtype=torch.bfloat16)] * 2)
        dist.all_to_all_single(torch.zeros(4), torch.zeros(4))  # even splits: sizes known from the shapes
        dist.all_to_all_single(torch.zeros(5), torch.zeros(4), [3, 2], [2, 2])  # split sizes: set by data
        work = dist.all_reduce(t, dist.ReduceOp.SUM, None, True)  # async_op given by position
        work.wait()
    f = rec.frame()
    assert list(zip(f.op, f.dtype, f.bytes)) == [("all_gather", "f32", 48), ("reduce_scatter", "bf16", 12),
                                                 ("all_to_all", "f32", 16), ("all_to_all", "f32", 16),
                                                 ("all_reduce", "f32", 24)]
    assert f.data_dependent.tolist() == [False, False, False, True, False]
    assert f.async_op.tolist() == [False] * 4 + [True] and f.group_size.tolist() == [2] * 5
    assert f.wait_ns.iloc[-1] >= f.issued_ns.iloc[-1]  # the async one's wait is its own, later point


def test_nothing_is_recorded_inside_a_compiled_region():
    rec = Recorder()
    with fake_world(2, 0), rec.installed():
        def fn(x):
            dist.all_reduce(x)
            return x * 2

        torch._dynamo.reset()
        torch.compile(fn, fullgraph=True, backend="aot_eager")(torch.ones(4))
        torch._dynamo.reset()
        dist.all_reduce(torch.ones(4))
    assert len(rec.frame()) == 1  # the eager call; the traced one is torch's functional collective, not a call
