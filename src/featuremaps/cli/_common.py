"""The Typer app shared by every subcommand, and the small parsers they use."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import typer

from featuremaps.errors import SettingsError

app = typer.Typer(
    name="featuremaps",
    help="See how convolution layers turn images into feature maps, layer by layer.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def parse_pair(text: str, option: str) -> int | tuple[int, int]:
    """``"3"`` -> 3; ``"3x5"`` or ``"3,5"`` -> (3, 5) (height, width)."""
    parts = [p for p in re.split(r"[x,]", text.strip().lower()) if p != ""]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise SettingsError(f"{option} must be an integer or HxW (e.g. 3 or 3x5); got {text!r}") from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return (values[0], values[1])
    raise SettingsError(f"{option} must be an integer or HxW (e.g. 3 or 3x5); got {text!r}")


def parse_padding(text: str) -> int | tuple[int, ...] | str:
    """``"1"``, ``"1,2"`` (y, x), ``"1,2,3,4"`` (top, bottom, left, right), ``same`` or ``valid``."""
    cleaned = text.strip().lower()
    if cleaned in ("same", "valid"):
        return cleaned
    try:
        values = tuple(int(p) for p in cleaned.split(","))
    except ValueError:
        raise SettingsError(
            f"--padding must be N, PY,PX, TOP,BOTTOM,LEFT,RIGHT, 'same' or 'valid'; got {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
