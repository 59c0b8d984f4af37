"""The prefetching loader (``--loader prefetch``): the next step's tokens are read, copied and widened while the
current step runs, so a step's data phase is a queue get and an event wait, not shard reads and host copies.

A background thread cuts this rank's spans from the record's stream (the same tokens, in the same order, as
``DistributedLoader.next_batches``) into pinned host buffers allocated once and reused, in the dtype the shards
store (uint16: a quarter of int64's bytes over PCIe). On CUDA the thread copies a buffer to the device on a side
stream and widens it there into a fresh tensor; the consuming stream waits on an event, never the host. On the
CPU the same thread widens on the host. Handed-out tensors are never written again: only the host buffers and
the device staging buffers, which no caller sees, are reused.
"""

from __future__ import annotations

import atexit
import queue
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .data import TOKEN_DTYPE, DistributedLoader, split_span

LoaderKind = Literal["prefetch", "record"]
_POLL_S = 0.05  # how often a blocked producer checks whether it was asked to stop
# Loaders whose thread runs, stopped at interpreter exit: a daemon thread still inside a torch op when the
# interpreter finalizes is ended by pthread_exit as it takes the GIL back, which aborts the process
# ("terminate called without an active exception") instead of letting it exit.
_RUNNING: weakref.WeakSet[PrefetchLoader] = weakref.WeakSet()


@atexit.register
def _close_running() -> None:
    for loader in list(_RUNNING):
        loader.close()


@dataclass
class _Batch:
    """One step's widened spans (grad_accum, micro_tokens + 1), already cut into their (x, y) views (on the
    producer's thread: the consumer's data phase is then a queue get and an event wait), the event that says they
    are ready on the device (None on the CPU), and the stream position after them (what ``state_dict`` reports
    once handed out)."""

    spans: torch.Tensor
    pairs: list[tuple[torch.Tensor, torch.Tensor]]
    ready: torch.cuda.Event | None
    state_after: dict[str, int]


@dataclass
class _Failure:
    error: BaseException


def stored_dtype() -> torch.dtype:
    """The torch dtype tokens are stored in (the shards' uint16), so host buffers and copies carry no widening."""
    return torch.from_numpy(np.empty(0, dtype=TOKEN_DTYPE)).dtype


class PrefetchLoader:
    """``next_batches`` of a ``DistributedLoader``, prepared ``depth`` steps ahead on a background thread.

    Call ``close`` (or use it as a context manager) when done: it stops the thread; an exception raised in the
    thread is raised again by the ``next_batches`` call that would have received its batch.
    """

    def __init__(self, source: DistributedLoader, device: torch.device, dtype: torch.dtype = torch.int64,
                 depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.source, self.device, self.dtype, self.depth = source, torch.device(device), dtype, depth
        self._cuda = self.device.type == "cuda"
        shape, stored = source.span_shape, stored_dtype()
        # depth + 1 host buffers: one filling while the copies of the others may still be in flight
        self._host = [torch.empty(shape, dtype=stored, pin_memory=self._cuda) for _ in range(depth + 1)]
        self._staging = [torch.empty(shape, dtype=stored, device=self.device) for _ in self._host] if self._cuda \
            else []
        self._copied: list[torch.cuda.Event | None] = [None] * len(self._host)
        self._side = torch.cuda.Stream(self.device) if self._cuda else None
        self._state = source.state_dict()["stream"]
        self._thread: threading.Thread | None = None
        self._start()

    # -- the consumer's side ---------------------------------------------------------------------------

    def next_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's grad_accum (x, y) pairs on the device, in ``dtype``, y = x shifted; ordered after the work
        already queued on the current stream, without waiting on the host."""
        if self._thread is None:
            raise RuntimeError("the prefetching loader is closed")
        item = self._queue.get()
        if isinstance(item, _Failure):
            self._join()
            raise item.error
        if item.ready is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(item.ready)
            item.spans.record_stream(current)  # allocated on the side stream, used on this one
        self._state = item.state_after
        return item.pairs

    def state_dict(self) -> dict[str, Any]:
        """The position after the last batch handed out, whatever the thread has prepared beyond it."""
        return {"stream": dict(self._state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rewind (after untimed warm-up steps): the batches prepared from the old position are dropped."""
        self.close()
        self.source.load_state_dict(state)
        self._state = self.source.state_dict()["stream"]
        self._start()

    def close(self) -> None:
        """Stop the thread and drop what it prepared; idempotent."""
        if self._thread is None:
            return
        self._stop.set()
        self._join()

    def __enter__(self) -> "PrefetchLoader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the producer's side ---------------------------------------------------------------------------

    def _start(self) -> None:
        self._queue: queue.Queue[_Batch | _Failure] = queue.Queue(maxsize=self.depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="golfprof-prefetch", daemon=True)
        self._thread.start()
        _RUNNING.add(self)

    def _join(self) -> None:
        thread, self._thread = self._thread, None
        _RUNNING.discard(self)
        while thread is not None and thread.is_alive():
            self._drain()  # a producer blocked on a full queue sees the stop flag within _POLL_S
            thread.join(timeout=_POLL_S)
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _produce(self) -> None:
        try:
            if self._cuda:
                with torch.cuda.device(self.device), torch.cuda.stream(self._side):
                    self._loop()
            else:
                self._loop()
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(_Failure(e))

    def _loop(self) -> None:
        slot = 0
        while not self._stop.is_set():
            self._put(self._prepare(slot))
            slot = (slot + 1) % len(self._host)

    def _prepare(self, slot: int) -> _Batch:
        """Fill host buffer ``slot`` (once its previous copy is done) and widen it into a fresh tensor."""
        host = self._host[slot]
        if self._copied[slot] is not None:
            self._copied[slot].synchronize()  # this thread waits, never the consumer
        self.source.next_spans(out=host.numpy())
        state = self.source.state_dict()["stream"]
        if not self._cuda:
            return self._batch(host.to(self.dtype, copy=True), None, state)  # the caller gets its own tensor
        staging = self._staging[slot]
        staging.copy_(host, non_blocking=True)
        copied = torch.cuda.Event()
        copied.record(self._side)
        self._copied[slot] = copied
        spans = staging.to(self.dtype, copy=True)
        ready = torch.cuda.Event()
        ready.record(self._side)
        return self._batch(spans, ready, state)

    def _batch(self, spans: torch.Tensor, ready: torch.cuda.Event | None, state: dict[str, int]) -> _Batch:
        s = self.source
        return _Batch(spans, [split_span(span, s.micro_batch_seqs, s.seq_len) for span in spans], ready, state)

    def _put(self, item: _Batch | _Failure) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue


def make_loader(kind: LoaderKind, pattern: str | Path, seq_len: int, micro_batch_seqs: int, grad_accum: int,
                world_size: int, rank: int, device: torch.device,
                vocab_size: int | None = None) -> DistributedLoader | PrefetchLoader:
    """The loader a run's ``--loader`` names; both hand out the record's tokens in the record's order."""
    source = DistributedLoader(pattern, seq_len, micro_batch_seqs, grad_accum, world_size, rank,
                               vocab_size=vocab_size)
    return source if kind == "record" else PrefetchLoader(source, device)


def close_loader(loader: object) -> None:
    """Stop a loader's thread where it has one (the record's loader has none)."""
    close = getattr(loader, "close", None)
    if close is not None:
        close()
