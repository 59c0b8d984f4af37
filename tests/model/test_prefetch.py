"""The prefetching loader: the record's tokens in the record's order for every world size, fresh tensors on every
hand-off, failures in its thread raised in the caller's, and a thread that stops (on close, and at exit)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from golfprof.model.data import DistributedLoader
from golfprof.model.prefetch import PrefetchLoader, close_loader, make_loader
from tests.model.test_data import _write_split

B, T, MICRO = 2, 4, 24  # 24 micro-batches per step: divisible over 1, 2, 3 and 8 ranks
CPU = torch.device("cpu")


def _record(pattern: Path, world: int, rank: int) -> DistributedLoader:
    return DistributedLoader(pattern, seq_len=T, micro_batch_seqs=B, grad_accum=MICRO // world, world_size=world,
                             rank=rank)


def _equal(a: list[tuple[torch.Tensor, torch.Tensor]], b: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    assert len(a) == len(b)
    for (x, y), (rx, ry) in zip(a, b):
        assert x.dtype == y.dtype == torch.int64 and x.shape == rx.shape == (B, T)
        torch.testing.assert_close(x, rx, rtol=0, atol=0)
        torch.testing.assert_close(y, ry, rtol=0, atol=0)


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    _write_split(tmp_path, "s", [700, 37, 0, 900, 211])  # steps straddle shard edges and wrap around
    return tmp_path / "s_*.bin"


@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_every_rank_gets_the_records_tokens_in_order(shards: Path, world: int) -> None:
    single = _record(shards, 1, 0)
    reference = [single.next_batches() for _ in range(6)]  # 6 steps of 193 tokens: wraps the 1848-token data
    records = [_record(shards, world, r) for r in range(world)]
    loaders = [PrefetchLoader(_record(shards, world, r), CPU) for r in range(world)]
    try:
        for step in range(6):
            per_rank = [loader.next_batches() for loader in loaders]
            for mine, record in zip(per_rank, records):  # each rank: what the record's loader hands that rank
                _equal(mine, record.next_batches())
            union = [per_rank[j % world][j // world] for j in range(MICRO)]
            _equal(union, reference[step])
    finally:
        for loader in loaders:
            loader.close()


def test_handed_out_tensors_are_never_reused_or_stale(shards: Path) -> None:
    """Every batch is mutated after hand-off and kept: the next batches are still the record's, and the kept
    ones still hold what the caller wrote (nothing of the loader's writes into a tensor it handed out)."""
    record = _record(shards, 1, 0)
    kept: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
    with PrefetchLoader(_record(shards, 1, 0), CPU, depth=2) as prefetch:
        for step in range(8):
            if step == 3:
                time.sleep(0.2)  # the thread fills its queue and waits: the following batches come from there
            batches = prefetch.next_batches()
            _equal(batches, record.next_batches())
            for x, y in batches:
                x.fill_(-step - 1)  # y shares x's span, shifted by one token
                y[:, -1] = -step - 1
            kept.append(batches)
    storages = {x.untyped_storage().data_ptr() for batches in kept for x, _ in batches}
    assert len(storages) == len({id(b) for b in kept})  # one fresh tensor per step, none shared between steps
    for step, batches in enumerate(kept):
        for x, y in batches:
            assert (x == -step - 1).all() and (y == -step - 1).all()


def test_an_error_in_the_thread_is_raised_by_the_next_batch(shards: Path) -> None:
    source = _record(shards, 1, 0)
    real, calls = source.next_spans, []

    def failing(out=None):
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("shard 4 vanished")
        return real(out=out)

    source.next_spans = failing
    loader = PrefetchLoader(source, CPU)
    loader.next_batches()
    loader.next_batches()
    with pytest.raises(ValueError, match="shard 4 vanished"):
        loader.next_batches()
    with pytest.raises(RuntimeError, match="closed"):
        loader.next_batches()
    assert not any(t.name == "golfprof-prefetch" and t.is_alive() for t in threading.enumerate())


def test_close_stops_a_thread_blocked_on_a_full_queue(shards: Path) -> None:
    before = {t for t in threading.enumerate() if t.name == "golfprof-prefetch"}
    loader = PrefetchLoader(_record(shards, 1, 0), CPU, depth=1)
    loader.next_batches()
    time.sleep(0.1)  # the thread has prepared the next batch and waits for room
    thread = loader._thread
    assert thread is not None and thread.is_alive()
    start = time.perf_counter()
    loader.close()
    assert time.perf_counter() - start < 1.0 and not thread.is_alive()
    loader.close()  # idempotent
    close_loader(loader)
    assert {t for t in threading.enumerate() if t.name == "golfprof-prefetch"} == before


def test_a_process_that_never_closes_its_loader_still_exits(shards: Path) -> None:
    code = textwrap.dedent(f"""
        import torch
        from golfprof.model.data import DistributedLoader
        from golfprof.model.prefetch import PrefetchLoader
        loader = PrefetchLoader(DistributedLoader({str(shards)!r}, 4, 2, 3), torch.device("cpu"), depth=1)
        loader.next_batches()
        print("done")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr


def test_rewinding_drops_what_was_prepared(shards: Path) -> None:
    record = _record(shards, 2, 1)
    with PrefetchLoader(_record(shards, 2, 1), CPU) as loader:
        start = loader.state_dict()
        assert start == record.state_dict()
        first = [loader.next_batches() for _ in range(3)]
        for _ in range(3):
            record.next_batches()
        time.sleep(0.1)  # the thread is ahead of what was handed out; the state is not
        assert loader.state_dict() == record.state_dict()
        loader.load_state_dict(start)
        for batches in first:
            _equal(loader.next_batches(), batches)


def test_make_loader_names_the_kind(shards: Path) -> None:
    record = make_loader("record", shards, T, B, MICRO, 1, 0, CPU)
    assert type(record) is DistributedLoader
    prefetch = make_loader("prefetch", shards, T, B, MICRO, 1, 0, CPU)
    try:
        assert isinstance(prefetch, PrefetchLoader)
        _equal(prefetch.next_batches(), record.next_batches())
    finally:
        close_loader(prefetch)
        close_loader(record)  # the record's loader has no thread: a no-op


def test_the_trainer_steps_identically_on_either_loader(tmp_path: Path) -> None:
    from golfprof.model.config import TINY_MODEL, TINY_TRAIN, RunConfig, Toggles
    from golfprof.model.synthetic import write_synthetic_dataset
    from golfprof.model.train import Trainer

    paths = write_synthetic_dataset(tmp_path, TINY_MODEL.vocab_size, 4 * TINY_TRAIN.tokens_per_step + 1, 1000, seed=0)
    losses = {}
    for kind in ("record", "prefetch"):
        run = RunConfig("tiny", TINY_MODEL, TINY_TRAIN, Toggles(bf16=(), compile="off", loader=kind), "custom")
        trainer = Trainer(run, CPU)
        loader = make_loader(kind, paths["train"], TINY_TRAIN.seq_len, TINY_TRAIN.micro_batch_seqs,
                             trainer.grad_accum, 1, 0, CPU, vocab_size=TINY_MODEL.vocab_size)
        try:
            losses[kind] = [float(trainer.step(s, loader)) for s in range(3)]
        finally:
            close_loader(loader)
    assert losses["prefetch"] == losses["record"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_are_the_records_widened_on_the_device(shards: Path) -> None:
    """On a GPU: pinned uint16 host buffers, a side-stream copy, int64 on the device, the record's tokens."""
    device = torch.device("cuda", torch.cuda.current_device())
    record = _record(shards, 3, 2)
    kept = []
    with PrefetchLoader(_record(shards, 3, 2), device) as loader:
        assert all(h.is_pinned() and h.dtype == torch.uint16 for h in loader._host)
        for step in range(6):
            batches = loader.next_batches()
            assert all(x.device == device and x.dtype == torch.int64 for x, _ in batches)
            for x, _ in batches:
                x.add_(0)  # consumed on the current stream, ordered after the copy by the event
            _equal([(x.cpu(), y.cpu()) for x, y in batches], record.next_batches())
            for x, _ in batches:
                x.fill_(-1 - step)
            kept.append(batches)
    torch.cuda.synchronize()
    for step, batches in enumerate(kept):
        assert all(bool((x == -1 - step).all()) for x, _ in batches)
