"""Collective cost model: time(op, bytes, world, algorithm, link) from a committed calibration table.

Alpha–beta in nccl-tests' conventions (doc/PERFORMANCE.md): a collective of S bytes (the full
buffer: a reduce-scatter's input, an all-gather's output) on n ranks takes

    t = latency(protocol, steps) + S · factor(op, n) / busbw(op, protocol)

with factor 2(n−1)/n for all-reduce, (n−1)/n for reduce-scatter and all-gather, 1 for broadcast.
Small messages are NCCL's latency/protocol regime (its tuning model, as torch._inductor ports it):
each protocol has a base latency plus a per-ring-step hardware latency, and a bandwidth of its own
(LL carries 4 data bytes in 8, LL128 120 in 128, capped per channel); the fastest protocol wins, as
NCCL's tuner picks. A world spanning nodes runs its ring over the slower of NVLink and the node
boundary's link, paying the network latency on the steps that cross it.

A table that `golfprof bench comm` measured holds times per (op, world, bytes) instead, and those are
interpolated (log–log) before any model is used. Pure: no torch, no device.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from golfprof.errors import ConfigError, GolfprofWarning

OPS = ("all_reduce", "reduce_scatter", "all_gather", "broadcast")
PROTOCOLS = ("LL", "LL128", "SIMPLE")
ALGORITHMS = ("auto", "ring")
BUNDLED = {"h100": "h100_nvlink.json", "h200": "h200_nvlink.json"}
INTER_NODE = "ib_400g.json"
# NCCL's protocol payload: LL sends 4 data bytes with every 4-byte flag, LL128 120 data bytes per 128-byte line
# (NCCL src/graph/tuning.cc; the 0.5 and 120/128 factors of torch/_inductor/comm_analysis.py)
LL_PAYLOAD = 0.5
LL128_PAYLOAD = 120.0 / 128.0


def bus_factor(op: str, n: int) -> float:
    """busbw / algbw for op on n ranks (nccl-tests): the share of the buffer each link carries."""
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op in ("reduce_scatter", "all_gather"):
        return (n - 1) / n
    if op == "broadcast":
        return 1.0
    raise ConfigError(f"no cost model for collective {op!r}; modelled: {', '.join(OPS)}")


def ring_steps(op: str, n: int) -> int:
    """Latency-bearing steps of a ring: 2(n−1) for all-reduce, n−1 for the others (NCCL's nsteps)."""
    return 2 * (n - 1) if op == "all_reduce" else n - 1


@dataclass(frozen=True)
class Link:
    bus_bw: dict[str, float]  # op -> GB/s at large messages
    hw_latency: dict[str, float]  # protocol -> µs per ring step
    ll_max_bw: float
    ll128_per_channel: float | None = None  # GB/s per channel; None: LL128 not used on this link
    ring_bw: float | None = None  # GB/s of the plain ring (algorithm="ring")
    nic_efficiency: tuple[float, float] | None = None  # (base, gain): base + gain·min(1, (nodes−1)/7)
    ll_max_bw_many_nodes: float | None = None
    net_overhead: tuple[float, float] | None = None  # (µs per crossing step, factor for SIMPLE)


@dataclass(frozen=True)
class Estimate:
    us: float
    protocol: str
    link: str
    source: str  # "model" or "measured"


@dataclass(frozen=True)
class CommModel:
    name: str
    path: str
    base_latency: dict[str, float] = field(default_factory=dict)  # protocol -> µs
    gpus_per_node: int = 8
    nchannels: int = 16
    nvlink: Link | None = None
    inter: Link | None = None
    interference: float = 0.0  # compute slowdown while communication overlaps it
    probe: float | None = None  # interference_probe: a GEMM's slowdown measured beside a kernel on nchannels SMs
    uncertainty: float = 0.0  # relative ± of every modelled or measured collective time (the table's own)
    measured: dict[str, dict[int, list[tuple[int, float]]]] = field(default_factory=dict)  # op -> world -> (bytes, µs)

    def time(self, op: str, nbytes: float, world: int, nodes: int = 1, algorithm: str = "auto") -> Estimate:
        """Modelled length of one collective; 0 on one rank (nothing to exchange)."""
        if op == "barrier":  # torch's NCCL barrier is a one-element all-reduce
            op, nbytes = "all_reduce", 4
        if algorithm not in ALGORITHMS:
            raise ConfigError(f"algorithm {algorithm!r}: valid: {', '.join(ALGORITHMS)}")
        if world <= 1:
            return Estimate(0.0, "", "", "model")
        rows = self.measured.get(op, {}).get(world)
        if rows and nodes == 1:
            return Estimate(interpolate(rows, nbytes), "", "measured", "measured")
        return self._model(op, float(nbytes), world, nodes, algorithm)

    def _model(self, op: str, nbytes: float, n: int, nodes: int, algorithm: str) -> Estimate:
        bus_factor(op, n)  # refuses unknown ops
        if self.nvlink is None or not self.base_latency:
            raise ConfigError(f"comm table {self.path} has no model for {op} at world {n} (only measured sizes "
                              f"for {sorted(self.measured.get(op, {}))})")
        multi = nodes > 1
        if multi and self.inter is None:
            raise ConfigError(f"comm table {self.path} has no inter-node link for --simulate-nodes {nodes}")
        best: Estimate | None = None
        for proto in PROTOCOLS:
            bw = self._protocol_bw(op, proto, nodes, algorithm)
            if bw is None:
                continue
            t = self._latency(op, proto, n, nodes) + nbytes * bus_factor(op, n) / (bw * 1e3)  # GB/s = 1e3 B/µs
            if best is None or t < best.us:
                best = Estimate(t, proto, "ib" if multi else "nvlink", "model")
        assert best is not None  # SIMPLE is always available
        return best

    def _link_bw(self, link: Link, op: str, algorithm: str) -> float:
        if algorithm == "ring" and link.ring_bw is not None:
            return link.ring_bw
        if op not in link.bus_bw:
            raise ConfigError(f"comm table {self.path} has no bus bandwidth for {op}")
        return link.bus_bw[op]

    def _protocol_bw(self, op: str, proto: str, nodes: int, algorithm: str) -> float | None:
        assert self.nvlink is not None
        bw = self._link_bw(self.nvlink, op, algorithm)
        ll_max = self.nvlink.ll_max_bw
        per_channel = self.nvlink.ll128_per_channel
        if nodes > 1:
            ib = self.inter
            assert ib is not None
            eff = 1.0
            if ib.nic_efficiency is not None:
                base, gain = ib.nic_efficiency
                eff = base + gain * min(1.0, (nodes - 1) / 7)
            bw = min(bw, self._link_bw(ib, op, algorithm) * eff)
            ll_max = ib.ll_max_bw if nodes <= 2 or ib.ll_max_bw_many_nodes is None else ib.ll_max_bw_many_nodes
            per_channel = ib.ll128_per_channel  # NCCL's port disables LL128 across IB
        if proto == "LL":
            return min(ll_max, bw * LL_PAYLOAD)
        if proto == "LL128":
            return None if per_channel is None else min(bw * LL128_PAYLOAD, self.nchannels * per_channel)
        return bw

    def _latency(self, op: str, proto: str, n: int, nodes: int) -> float:
        assert self.nvlink is not None
        steps = ring_steps(op, n)
        intra = self.nvlink.hw_latency[proto]
        if nodes <= 1:
            return self.base_latency[proto] + steps * intra
        ib = self.inter
        assert ib is not None
        crossing = 2 * (nodes - 1) if op == "all_reduce" else nodes - 1
        if ib.net_overhead is not None:
            over, simple = ib.net_overhead
            intra = max(intra, over * (simple if proto == "SIMPLE" else 1.0))
        return self.base_latency[proto] + (steps - crossing) * intra + crossing * ib.hw_latency[proto]


def interpolate(rows: list[tuple[int, float]], nbytes: float) -> float:
    """Log–log between measured sizes; the smallest size's time below (latency floor), and the last
    two sizes' bandwidth beyond the largest (linear in bytes)."""
    pts = sorted((float(b), float(t)) for b, t in rows if b > 0 and t > 0)
    if not pts:
        raise ConfigError("measured comm table row without positive sizes and times")
    if nbytes <= pts[0][0]:
        return pts[0][1]
    if nbytes >= pts[-1][0]:
        if len(pts) == 1:
            return pts[-1][1] * nbytes / pts[-1][0]
        (b0, t0), (b1, t1) = pts[-2], pts[-1]
        return t1 + (nbytes - b1) * (t1 - t0) / (b1 - b0)
    for (b0, t0), (b1, t1) in zip(pts, pts[1:]):
        if b0 <= nbytes <= b1:
            w = (math.log(nbytes) - math.log(b0)) / (math.log(b1) - math.log(b0))
            return math.exp(math.log(t0) + w * (math.log(t1) - math.log(t0)))
    raise AssertionError("unreachable")


# ---- tables -------------------------------------------------------------------------------------

def _v(d: dict[str, Any], key: str, where: str, *, positive: bool = False) -> float:
    """A number from the table: each is {"value": x, "source": "..."}, and a number without its source is refused;
    so is one that is not a finite real, a negative one, and (``positive``: bandwidths, counts) zero."""
    if key not in d:
        raise ConfigError(f"{where}: missing {key!r}")
    item = d[key]
    if not isinstance(item, dict) or "value" not in item or not str(item.get("source", "")).strip():
        raise ConfigError(f"{where}: {key!r} must be {{\"value\": ..., \"source\": \"...\"}} "
                          "(every number cites its source)")
    x = item["value"]
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ConfigError(f"{where}.{key}: {x!r} is not a finite number")
    if x < 0 or (positive and x == 0):
        raise ConfigError(f"{where}.{key}: {x} must be {'> 0' if positive else '>= 0'}")
    return float(x)


def _per(d: dict[str, Any], where: str, *, positive: bool = False) -> dict[str, float]:
    return {k: _v(d, k, where, positive=positive) for k in d}


def _link(d: dict[str, Any], where: str) -> Link:
    opt = lambda k, pos=False: _v(d, k, where, positive=pos) if k in d else None  # noqa: E731
    eff = (opt("nic_efficiency_base"), opt("nic_efficiency_gain"))
    over = (opt("net_overhead_us"), opt("net_overhead_simple_factor"))
    return Link(bus_bw=_per(d.get("bus_bw_GBps", {}), f"{where}.bus_bw_GBps", positive=True),
                hw_latency=_per(d.get("hw_latency_us", {}).get("ring", {}), f"{where}.hw_latency_us.ring"),
                ll_max_bw=_v(d, "ll_max_bw_GBps", where, positive=True),
                ll128_per_channel=opt("ll128_per_channel_max_GBps", True), ring_bw=opt("ring_link_bw_GBps", True),
                nic_efficiency=eff if None not in eff else None,  # type: ignore[arg-type]
                ll_max_bw_many_nodes=opt("ll_max_bw_GBps_over_2_nodes", True),
                net_overhead=over if None not in over else None)  # type: ignore[arg-type]


def _read(path: Path | str) -> tuple[dict[str, Any], str]:
    name = str(path)
    if name in BUNDLED or name in BUNDLED.values() or name == INTER_NODE:
        fname = BUNDLED.get(name, name)
        text = resources.files("golfprof.predict").joinpath("comm_tables", fname).read_text()
        return json.loads(text), f"bundled:{fname}"
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--comm-model {name}: no such file (bundled tables: {', '.join(BUNDLED)})")
    try:
        return json.loads(p.read_text()), str(p)
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"--comm-model {name}: not a readable JSON table ({e})") from None


def from_dict(d: dict[str, Any], where: str, inter: dict[str, Any] | None = None) -> CommModel:
    """A CommModel from a parsed table; ``inter`` is the node-boundary table (its ``links.ib``)."""
    if d.get("format") != "golfprof-comm-table/1":
        raise ConfigError(f"{where}: not a golfprof comm table (format {d.get('format')!r})")
    links = d.get("links", {})
    ib = links.get("ib") or ((inter or {}).get("links", {}).get("ib"))
    measured = _measured(d.get("measured", {}), f"{where}.measured")
    return CommModel(
        name=d.get("name", where), path=where,
        base_latency=_per(d.get("base_latency_us", {}).get("ring", {}), f"{where}.base_latency_us.ring"),
        gpus_per_node=int(_v(d, "gpus_per_node", where, positive=True)) if "gpus_per_node" in d else 8,
        nchannels=int(_v(d, "nchannels", where, positive=True)) if "nchannels" in d else 16,
        nvlink=_link(links["nvlink"], f"{where}.links.nvlink") if "nvlink" in links else None,
        inter=_link(ib, f"{where}.links.ib") if ib else None,
        interference=float(_v(d, "interference", where)) if "interference" in d else 0.0,
        probe=_v(d, "interference_probe", where) if "interference_probe" in d else None,
        uncertainty=_uncertainty(d, where),
        measured=measured,
    )


def _uncertainty(d: dict[str, Any], where: str) -> float:
    """The table's relative ± on each collective's time (a shorter time than 0 is taken as 0)."""
    return _v(d, "uncertainty", where) if "uncertainty" in d else 0.0


def _measured(d: Any, where: str) -> dict[str, dict[int, list[tuple[int, float]]]]:
    """Measured rows {op: {world: [[bytes, µs], ...]}}: known ops, whole worlds >= 2, bytes > 0, µs >= 0."""
    out: dict[str, dict[int, list[tuple[int, float]]]] = {}
    try:
        for op, by_world in d.items():
            if op not in OPS:
                raise ConfigError(f"{where}: unknown op {op!r} (known: {', '.join(OPS)})")
            out[op] = {}
            for w, rows in by_world.items():
                rows = [(int(b), float(t)) for b, t in rows]
                if int(w) < 2 or any(b <= 0 or not math.isfinite(t) or t < 0 for b, t in rows):
                    raise ConfigError(f"{where}.{op}.{w}: need a world >= 2, bytes > 0 and finite µs >= 0")
                out[op][int(w)] = rows
    except (AttributeError, TypeError, ValueError) as e:
        raise ConfigError(f"{where}: malformed ({e}); expected {{op: {{world: [[bytes, us], ...]}}}}") from None
    return out


def check_covers(path: Path | str | None, world: int, nodes: int = 1) -> CommModel:
    """The table a simulated run will use, refused now if it cannot price every op at this world and node count
    (the run would otherwise fail after training); warns when one node of the table holds fewer GPUs."""
    model = load(path)
    for op in OPS:
        model.time(op, 1 << 20, world, nodes)
    if math.ceil(world / nodes) > model.gpus_per_node:
        warnings.warn(f"--comm-model {model.name}: a node of this table holds {model.gpus_per_node} GPUs, the world "
                      f"puts {math.ceil(world / nodes)} on each of {nodes} node(s): give --simulate-nodes",
                      GolfprofWarning, stacklevel=2)
    return model


def load(path: Path | str | None = None) -> CommModel:
    """A table by file name or bundled name (h100, h200; default h200), with the bundled 400 Gb/s
    InfiniBand boundary as its inter-node link unless the table has its own."""
    d, where = _read(path or "h200")
    inter, _ = _read(INTER_NODE)
    return from_dict(d, where, inter)


def default_for_device(device_name: str | None) -> str:
    """The bundled table matching a GPU name (H100 -> h100, else h200)."""
    return "h100" if device_name and "H100" in device_name.upper() else "h200"
