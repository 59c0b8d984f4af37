import gc

from golfprof.profiler.gcwatch import GcWatch


def test_collections_are_counted_and_timed_per_take():
    with GcWatch() as watch:
        watch.take()
        junk = [[i] for i in range(200_000)]  # something for a full collection to walk
        gc.collect()
        first = watch.take()
        del junk
        second = watch.take()
    assert first["gc_collections"] >= 1 and first["gc_oldest_generation"] == 2 and first["gc_ms"] > 0
    assert second == {"gc_ms": 0.0, "gc_collections": 0, "gc_oldest_generation": -1}
    gc.collect()
    assert watch.take()["gc_collections"] == 0  # detached on exit
