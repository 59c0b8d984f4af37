"""Judging results: per-step samples, statistics, variant comparisons and the regression gate (no torch)."""
