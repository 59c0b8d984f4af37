"""golfprof: profiling and systems ablations for banked-Muon speedrun trainers."""

__version__ = "0.1.0"
