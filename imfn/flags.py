"""Command-line flags, both ways: a dataclass's fields as ``imfn`` flags, and a config block rendered as those flags.

Hyperparameters have one default each, in the dataclass the step's function takes; their flags are derived from
its fields (field ``noise_sigma`` -> ``--noise-sigma``, a ``prefix`` for a nested block: ``--decoder-epochs``), so a
config block whose keys are the field names is handed through unchanged (:func:`render`, what the workflow's rules
call). A verb's own file and value flags are written in a short form (:func:`parse_spec`).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path


def parse_bool(text: str) -> bool:
    """``true`` / ``false`` (any case): ``bool("False")`` would be True."""
    if text.lower() not in {"true", "false"}:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def _flag_type(annotation) -> Callable[[str], object]:
    """``int``, ``float | None``, ``bool`` ... -> the parser of one flag value (the non-None member of a union)."""
    members = (
        [a for a in typing.get_args(annotation) if a is not type(None)]
        if isinstance(annotation, types.UnionType)
        else [annotation]
    )
    return parse_bool if members[0] is bool else members[0]


def add_fields(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """One flag per field of ``cls``; a field without a default is a required flag."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING
        parser.add_argument(
            f"--{prefix}{f.name.replace('_', '-')}",
            dest=f"{prefix.replace('-', '_')}{f.name}",
            type=_flag_type(hints[f.name]),
            required=required,
            default=None if required else f.default,
            help=None if required else f"default {f.default}",
        )


def from_args(cls: type, args: argparse.Namespace, prefix: str = ""):
    """The dataclass ``cls`` from the parsed flags of its fields."""
    return cls(**{f.name: getattr(args, f"{prefix.replace('-', '_')}{f.name}") for f in dataclasses.fields(cls)})


def positive(text: str) -> int:
    """A count of at least 1 (``--bank-size -3`` is refused naming the flag's rule, not a derived bound)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def existing_path(text: str) -> Path:
    """A path the verb reads: it must exist (a missing input is named as such before any work)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{path} not found")
    return path


TYPES = {"": Path, "in": existing_path, "int": int, "count": positive, "float": float, "str": str}


def parse_spec(spec: str) -> list[tuple[str, dict]]:
    """``"--mnist:in --seed:int --T:int+ --lower* --root? --health:bool parts+"`` -> argparse arguments.

    A flag is an output path unless typed: ``:in`` a path it reads (which must exist), ``:int``, ``:count`` (an
    integer >= 1), ``:float``, ``:str``, ``:bool`` for a switch; ``+`` takes one or more values, ``*`` zero or more
    (the flag may be repeated), ``?`` makes it optional (default None); every other flag is required."""
    arguments = []
    for word in spec.split():
        name, _, kind = word.rstrip("+*?").partition(":")
        kwargs: dict = {"type": TYPES[kind]} if kind != "bool" else {}
        if kind == "bool":
            kwargs["action"] = "store_true"
        elif word.endswith("+"):
            kwargs["nargs"] = "+"
        elif word.endswith("*"):
            kwargs |= {"nargs": "*", "default": [], "action": "extend"}  # a repeated flag adds its values
        if name.startswith("--") and kind != "bool" and not word.endswith(("*", "?")):
            kwargs["required"] = True
        arguments.append((name, kwargs))
    return arguments


def render(block: Mapping, prefix: str = "", level: int | None = None) -> str:
    """A config block as ``imfn`` flags: key ``a_b`` is ``--a-b VALUE``; a nested block ``c: {d: 1}`` is
    ``--c-d 1``; null is left out (the command's default); a list is its entry at ``level`` when a level is given
    (per-level schedules), else its items joined by spaces."""
    rendered = []
    for key, value in block.items():
        if isinstance(value, Mapping):
            rendered.append(render(value, f"{prefix}{key}-", level))
            continue
        if value is None:
            continue
        if isinstance(value, list):
            value = value[level] if level is not None else " ".join(map(str, value))
        rendered.append(f"--{prefix}{key}".replace("_", "-") + f" {value}")
    return " ".join(flag for flag in rendered if flag)


def optional(flag: str, value) -> str:
    """A command-line flag, or nothing when the value is null."""
    return "" if value is None else f"{flag} {value}"
