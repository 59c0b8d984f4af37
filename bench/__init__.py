"""Benchmarks of trainer parts and of golfprof itself (bench ortho, overhead, attention, comm)."""
