"""Where real traces live: public ones beside the checkout (shared/), GPU recordings in tests/data."""

from pathlib import Path

PUBLIC = Path(__file__).resolve().parents[2].parent / "shared" / "traces" / "public"
GPU_TRACES = Path(__file__).resolve().parents[1] / "data" / "gpu_traces"
