"""``--device`` (auto, cpu, cuda) read one way by the trainer, the benchmarks and the CLI's checks.

Torch-light: the name is checked without importing torch (the CLI refuses a bad one before anything
loads); torch is imported only when a device is resolved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from golfprof.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


def check_name(name: str) -> None:
    """Refuse a device name that is none of ``DEVICES``."""
    if name not in DEVICES:
        raise ConfigError(f"--device {name!r}: valid: {', '.join(DEVICES)}")


def resolve_device(name: str, local_rank: int = 0, *, gpu_only: str | None = None) -> torch.device:
    """``auto``: this rank's GPU when one is visible, else the CPU; ``cuda`` with no GPU visible is refused.

    ``gpu_only``, for commands that measure GPU kernels: the refusal ``auto`` gets on a machine without
    a GPU, where falling back to the CPU would time something else than the user asked for.
    """
    check_name(name)
    import torch

    gpu = torch.cuda.is_available()
    if name == "auto" and not gpu and gpu_only is not None:
        raise ConfigError(gpu_only)
    if name == "cuda" and not gpu:
        raise ConfigError("--device cuda: no CUDA GPU is visible")
    if name == "cpu" or not gpu:
        return torch.device("cpu")
    return torch.device("cuda", local_rank)
