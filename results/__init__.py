"""Judging results: per-step samples, statistics, variant comparisons and the regression gate (no torch)."""

# The variant the others are compared with unless a matrix or the user names another: the record.
BASELINE = "explicit_banks"
