"""golfprof.traces: ``golfprof analyze`` over Kineto traces.

load (stream a trace into frames) -> discover (PATH -> ranks and windows) -> events / attribute
(which phase launched each kernel) -> phase_table, comm, metrics (HTA-compatible idle and overlap)
-> summary (per rank, per run) -> diagnose (findings) -> report (JSON, tables); command is the CLI.
``golfprof diff``: ranks (each rank's summary and kernel table; the dashboard reads runs the same way) -> diff.
"""
