"""GPU device table: the peaks a kernel's time is rescaled by when predicting for another GPU (--target-gpu).

Bundled as package data (``predict/devices.json``, format ``golfprof-device-table/1``); ``--target-gpu FILE``
takes a table of the same format. Every number is ``{"value", "source"}`` and is checked as the comm tables'
are (costmodel._v): finite, real, > 0. ``achievable_bw_fraction`` (optional, at most 1: the share of the HBM
peak a streaming copy reaches) sets the split rule's bandwidth part; without it the peak is taken. A run's
recorded device name finds its source entry through each entry's ``matches`` (substrings of torch's device name).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from golfprof.errors import ConfigError

from .costmodel import _v

FORMAT = "golfprof-device-table/1"
NUMBERS = ("peak_bf16_flops", "hbm_bw_Bps", "sm_count")


@dataclass(frozen=True)
class Device:
    key: str
    name: str
    matches: tuple[str, ...]
    peak_flops: float  # dense bf16 FLOP/s
    hbm_bw: float  # bytes/s
    sm_count: int
    comm_table: str | None  # the bundled comm table of this GPU's NVLink world, if any
    where: str
    bw_fraction: float = 1.0  # the share of hbm_bw a streaming kernel reaches (achievable_bw_fraction; 1: unknown)

    @property
    def ridge(self) -> float:
        """FLOPs per byte where the roofline turns: above it a kernel is bound by FLOP/s, below by bandwidth."""
        return self.peak_flops / self.hbm_bw


def _device(key: str, d: Any, where: str) -> Device:
    at = f"{where}.devices.{key}"
    if not isinstance(d, dict):
        raise ConfigError(f"{at}: must be an object with {', '.join(NUMBERS)}")
    flops, bw, sms = (_v(d, k, at, positive=True) for k in NUMBERS)
    if sms != int(sms):
        raise ConfigError(f"{at}.sm_count: {sms} is not a whole number")
    matches = d.get("matches", [key])
    if not isinstance(matches, list) or not all(isinstance(m, str) and m for m in matches):
        raise ConfigError(f"{at}.matches: must be a list of non-empty device-name substrings")
    comm = d.get("comm_table")
    frac = _v(d, "achievable_bw_fraction", at, positive=True) if "achievable_bw_fraction" in d else 1.0
    if frac > 1:
        raise ConfigError(f"{at}.achievable_bw_fraction: {frac} is a share of hbm_bw_Bps, at most 1")
    return Device(key, str(d.get("name", key)), tuple(matches), flops, bw, int(sms),
                  str(comm) if comm else None, where, frac)


def from_dict(doc: Any, where: str) -> dict[str, Device]:
    """Every device of a parsed table, checked whole."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ConfigError(f"{where}: not a golfprof device table (format {got!r}, expected {FORMAT!r})")
    devs = doc.get("devices")
    if not isinstance(devs, dict) or not devs:
        raise ConfigError(f"{where}: 'devices' must be a non-empty object of device entries")
    return {k: _device(k, v, where) for k, v in devs.items()}


def bundled() -> dict[str, Device]:
    text = resources.files("golfprof.predict").joinpath("devices.json").read_text()
    return from_dict(json.loads(text), "bundled:devices.json")


def _read_file(path: Path, flag: str) -> dict[str, Device]:
    if not path.is_file():
        raise ConfigError(f"{flag} {path}: no such file and not a bundled GPU ({', '.join(bundled())})")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{flag} {path}: not a readable JSON device table ({e})") from None
    return from_dict(doc, str(path))


def resolve_target(spec: str, flag: str = "--target-gpu") -> tuple[Device, dict[str, Device]]:
    """The target device of ``--target-gpu`` (a bundled key or a FILE whose ``target``, or only device, is it)
    and every device known to look the source up in (the bundled ones, a file's added over them)."""
    known = bundled()
    if spec.lower() in known:
        return known[spec.lower()], known
    path = Path(spec)
    mine = _read_file(path, flag)
    with_file = known | mine
    doc_target = json.loads(path.read_text(encoding="utf-8")).get("target")
    if doc_target is None and len(mine) == 1:
        doc_target = next(iter(mine))
    if doc_target not in mine:
        raise ConfigError(f"{flag} {path}: name the target with \"target\": one of {', '.join(mine)}")
    return mine[str(doc_target)], with_file


def source_device(device_name: str | None, known: dict[str, Device]) -> Device:
    """The device table's entry for the GPU a run was recorded on."""
    name = (device_name or "").upper()
    for dev in known.values():
        if any(m.upper() in name for m in dev.matches):
            return dev
    raise ConfigError(f"--target-gpu: the run's device {device_name!r} is not in the device table "
                      f"({', '.join(known)}); give a table FILE with an entry whose 'matches' names it")


def check_run(target_gpu: str, device: str) -> Device:
    """--target-gpu for a run about to start, refused now (not after training): the table, and the GPU the run
    will be played on (rescaling needs a GPU trace, and that GPU in the table)."""
    tgt, known = resolve_target(target_gpu)
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        raise ConfigError("--target-gpu rescales a GPU rank's kernels: this run would be played on the CPU")
    source_device(torch.cuda.get_device_name(0), known)
    return tgt
