"""The run options of ``train`` and ``ablate``, generated from the dataclass fields that declare them.

A field made with ``golfprof.model.config.option`` in ``Toggles``, ``TrainConfig`` or ``RunSpec`` is a
command-line option: its name (``--rs-order``), type, choices (its ``Literal``), default and help come
from the field, and so does the validation of what a user types. Nothing else lists them.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, get_args, get_origin, get_type_hints

import typer

from golfprof.ablations.spec import RunSpec
from golfprof.errors import ConfigError
from golfprof.model.config import BF16_PARTS, PRESETS, RunConfig, Toggles, TrainConfig, choices, preset, replace

# Where an option's value goes: the variant's toggles, the preset's training config, or the RunSpec.
Owner = Literal["toggles", "train", "launch"]


@dataclass(frozen=True)
class RunOption:
    """One command-line option and the field it sets."""

    param: str  # the Python parameter typer passes (flag without dashes, snake_case)
    owner: Owner
    field: str
    flag: str
    help: str
    default: Any  # the CLI's default: None for toggles and training fields (keep the variant's/preset's)
    cli_type: Any
    choices: tuple[str, ...]

    def parameter(self) -> inspect.Parameter:
        info = typer.Option(self.flag, help=self.help) if self.flag != _flag(self.param) else typer.Option(
            help=self.help)
        return inspect.Parameter(self.param, inspect.Parameter.KEYWORD_ONLY, default=self.default,
                                 annotation=Annotated[self.cli_type, info])


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _stored_type(hint: Any) -> Any:
    """The CLI type of a stored field type: Literal -> str, X | None -> X, tuple[...] -> str (a list)."""
    if get_origin(hint) is Literal or get_origin(hint) is tuple:
        return str
    args = [a for a in get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _options(cls: type, owner: Owner) -> list[RunOption]:
    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        valid = choices(cls, f.name)
        shown = ",".join(valid) if get_origin(hints[f.name]) is tuple else ", ".join(valid)
        flag = f.metadata.get("flag") or _flag(f.name)
        base = f.metadata.get("type") or _stored_type(hints[f.name])
        keeps_default = owner == "launch"
        default = (base(f.default) if f.metadata.get("type") and f.default is not None else f.default) \
            if keeps_default else None
        cli_type = base if keeps_default and f.default is not None else Optional[base]
        out.append(RunOption(param=flag.lstrip("-").replace("-", "_"), owner=owner, field=f.name, flag=flag,
                             help=f.metadata["help"].format(choices=shown), default=default, cli_type=cli_type,
                             choices=valid))
    return out


PRESET_HELP = f"Model/batch preset: {', '.join(list(PRESETS)[:-1])} or {list(PRESETS)[-1]}."


def run_options() -> list[RunOption]:
    """Every run option, in the order ``--help`` lists them."""
    train = _options(TrainConfig, "train")
    steps = [o for o in train if o.field == "steps"]
    launch = _options(RunSpec, "launch")
    device = [o for o in launch if o.field == "device"]
    return (steps + device + _options(Toggles, "toggles") + [o for o in train if o.field != "steps"]
            + [o for o in launch if o.field != "device"])


def parameters() -> list[inspect.Parameter]:
    """typer's view of the run options: ``--preset`` first, then every generated option."""
    preset_param = inspect.Parameter("preset", inspect.Parameter.KEYWORD_ONLY, default="tiny",
                                     annotation=Annotated[str, typer.Option(help=PRESET_HELP)])
    return [preset_param] + [o.parameter() for o in run_options()]


def defaults() -> dict[str, Any]:
    """The CLI's defaults of every run option, by parameter name (for runs started from code)."""
    return {p.name: p.default for p in parameters()}


def launch_options(cls: type) -> list[RunOption]:
    """The options another command's launch dataclass declares with ``option`` (`golfprof profile`'s ScriptSpec)."""
    return _options(cls, "launch")


def launch_values(opts: list[RunOption], values: dict[str, Any]) -> dict[str, Any]:
    """Command-line values by parameter -> the fields they set, each checked against its choices."""
    return {o.field: None if values.get(o.param) is None else _value(o, values[o.param]) for o in opts}


def parse_bf16(text: str) -> tuple[str, ...]:
    """'all', 'none', or a comma list of embeddings,weights,momentum,rotary."""
    t = text.strip().lower()
    if t == "all":
        return BF16_PARTS
    if t in ("none", ""):
        return ()
    parts = tuple(p.strip() for p in t.split(",") if p.strip())
    bad = [p for p in parts if p not in BF16_PARTS]
    if bad:
        raise ConfigError(f"--bf16 part(s) {', '.join(bad)} not valid; use all, none or a list of: "
                          f"{', '.join(BF16_PARTS)}")
    return parts


def _value(opt: RunOption, value: Any) -> Any:
    """A typed-in value, checked against the field's choices, as the field stores it."""
    if opt.owner == "toggles" and opt.field == "bf16":
        return parse_bf16(value)
    if opt.choices and value not in opt.choices:
        raise ConfigError(f"{opt.flag} {value!r}: valid: {', '.join(opt.choices)}")
    if isinstance(value, Path):
        return str(value)
    return value


def split(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Command-line values by parameter -> (toggle overrides, train overrides, RunSpec launch fields).

    Toggle and train values left at None keep the variant's and the preset's.
    """
    toggles: dict[str, Any] = {}
    train: dict[str, Any] = {}
    launch: dict[str, Any] = {}
    for opt in run_options():
        value = values.get(opt.param, opt.default)
        if value is None and opt.owner != "launch":
            continue
        target = {"toggles": toggles, "train": train, "launch": launch}[opt.owner]
        target[opt.field] = None if value is None else _value(opt, value)
    return toggles, train, launch


def run_config(variant: str, preset_name: str, toggles: dict[str, Any], train: dict[str, Any]) -> RunConfig:
    """The preset, the variant's toggles, then the command line's overrides."""
    from golfprof.ablations import variants

    model_cfg, train_cfg = preset(preset_name)
    resolved = variants.resolve(variant, toggles)
    train_cfg = replace(train_cfg, **train)
    if train_cfg.steps < 1:
        raise ConfigError("--steps must be >= 1")
    return RunConfig(preset_name, model_cfg, train_cfg, resolved, variant)


def annotated(param: str) -> Any:
    """The typer annotation of one run option, for commands that take a few of them (bench overhead)."""
    return next(p.annotation for p in parameters() if p.name == param)
