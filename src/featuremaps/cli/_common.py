"""The Typer app shared by every subcommand, and the small parsers they use."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, cast

import typer

from featuremaps.errors import SEED_MAX, SettingsError

if TYPE_CHECKING:  # the commands import torch only when they run (--help, samples and banks start without it)
    from featuremaps.conv.geometry import PaddingSpec
    from featuremaps.conv.layer import ConvLayer
    from featuremaps.conv.layer import PaddingMode as ConvPaddingMode


def _usage_name(argument: Any) -> str:
    """``IMAGE``, ``[IMAGE]`` (optional) and ``IMAGE...`` (several) on usage lines, where typer writes
    ``{IMAGE}`` for every required argument."""
    name = argument.display_name_raw
    name = name if argument.required else f"[{name}]"
    return name + ("..." if argument.nargs != 1 else "")


typer.core.TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign,assignment]  # usage lines only

COMMAND_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Convolution", ("conv", "animate", "receptive-field", "banks")),
    ("Models and their maps", ("models", "layers", "show", "lineage", "hierarchy", "visualize")),
    ("Recognition", ("train", "calibrate", "evaluate", "predict")),
    ("Segmentation", ("segment",)),
    ("Datasets", ("samples", "extract", "microscope")),
    ("Explorer and report", ("serve", "demo")),
)
"""How ``featuremaps --help`` lists the commands: by what they are for, in the order a newcomer meets them."""


class _GroupedCommands(typer.core.TyperGroup):
    """``--help`` lists the commands in :data:`COMMAND_GROUPS` (any other under "Other")."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:  # typer's own click types
        names = self.list_commands(ctx)
        grouped = [name for _, members in COMMAND_GROUPS for name in members]
        groups = [*COMMAND_GROUPS, ("Other", tuple(n for n in names if n not in grouped))]
        limit = formatter.width - 6 - max((len(name) for name in names), default=0)
        for title, members in groups:
            rows = []
            for name in members:
                command = self.get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


app = typer.Typer(
    name="featuremaps",
    cls=_GroupedCommands,
    help="See how convolution layers turn images into feature maps, layer by layer.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from featuremaps.version import __version__

        typer.echo(f"featuremaps {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """See how convolution layers turn images into feature maps, layer by layer."""


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


def parse_padding(text: str) -> PaddingSpec:
    """``"1"``, ``"1,2"`` (y, x), ``"1,2,3,4"`` (top, bottom, left, right), ``same`` or ``valid``."""
    cleaned = text.strip().lower()
    if cleaned in ("same", "valid"):
        return "same" if cleaned == "same" else "valid"
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


Device = Annotated[Optional[str], typer.Option(metavar="cpu|cuda|cuda:N", help="Where the model runs (default: "
                                              "cpu); a GPU that is not there is refused in one line.")]


def model_on(name: str, device: str | None, **options: Any) -> Any:
    """``load_model(name, **options)`` on ``device``, which is checked first (no model is loaded for a GPU that is
    not there)."""
    from featuremaps.features.info import resolve_device
    from featuremaps.models import load_model

    where = resolve_device(device)
    return load_model(name, **options).to(where)


Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace output files featuremaps did not write (a "
                                        "user's file, a changed file, a link). Without it such a file stops the "
                                        "command before any work, and featuremaps' own earlier outputs are replaced.")]


# Options shared by every command that builds a convolution layer (conv, animate).
Depth = Annotated[Optional[int], typer.Option(metavar="D", help="Number of filters = number of maps (sets the size "
                                              "of a random, random_int or gabor bank).")]
Stride = Annotated[str, typer.Option(metavar="S|SYxSX", help="Pixels the filter jumps.")]
PaddingOption = Annotated[str, typer.Option("--padding", metavar="P|PY,PX|T,B,L,R|same|valid",
                                            help="Pixels added at the borders.")]
PaddingMode = Annotated[str, typer.Option(metavar="zeros|reflect|replicate|circular",
                                          help="What the added border pixels hold.")]
Dilation = Annotated[str, typer.Option(metavar="D|DYxDX", help="Gap between filter taps (1 = none).")]
Groups = Annotated[int, typer.Option(metavar="G", help="Split channels and filters into G groups.")]
Relu = Annotated[bool, typer.Option("--relu", help="Apply ReLU to the maps.")]
Seed = Annotated[int, typer.Option(metavar="N", min=0, max=SEED_MAX, help="Seed of the random banks (and of a generated grid).")]
TileSize = Annotated[int, typer.Option(metavar="PIXELS", help="Side of each map's tile in the picture.")]
Scale = Annotated[Optional[float], typer.Option(metavar="PX", help="Pixels per map unit instead of --tile-size "
                                                "(maps of different sizes keep their true relative size).")]
Transposed = Annotated[bool, typer.Option("--transposed", help="A transposed convolution (upsampling, as "
                                          "ConvTranspose2d): stride-1 zeros go between the input's pixels.")]
OutputPadding = Annotated[str, typer.Option(metavar="P|PYxPX", help="Rows/columns added after a --transposed "
                                            "output (smaller than the stride or the dilation).")]


def make_layer(
    in_channels: int, filters: str, *, depth: int | None, kernel_size: str | None, stride: str, padding: str,
    padding_mode: str, dilation: str, groups: int, relu: bool, seed: int, bias: float | None = None,
    transposed: bool = False, output_padding: str = "0",
) -> ConvLayer:
    """A ConvLayer from the command line's text options."""
    from featuremaps.conv.layer import ConvLayer

    return ConvLayer(
        in_channels,
        Path(filters) if filters.lower().endswith(".npy") else filters,
        depth=depth,
        kernel_size=parse_pair(kernel_size, "--kernel-size") if kernel_size else None,
        stride=parse_pair(stride, "--stride"),
        padding=parse_padding(padding),
        padding_mode=cast("ConvPaddingMode", padding_mode),  # ConvLayer checks the value
        dilation=parse_pair(dilation, "--dilation"),
        groups=groups,
        bias=bias,
        relu=relu,
        seed=seed,
        transposed=transposed,
        output_padding=parse_pair(output_padding, "--output-padding"),
    )


MODEL_HELP = ("builtin:imagenet (trained on ImageNet photos), builtin:objects, builtin:shapes (trained on generated "
              "drawings), tinyvgg, tinyresnet, lenet5, a torchvision name (untrained), timm:NAME or a checkpoint "
              "(see 'featuremaps models').")
ModelName = Annotated[str, typer.Option("--model", "-m", metavar="MODEL", help=MODEL_HELP)]
Weights = Annotated[Optional[str], typer.Option(metavar="W", help="DEFAULT, a weights name, or a weights file "
                                                "(default: untrained).")]


def parse_size(text: str, option: str) -> tuple[int, int]:
    """``N`` or ``HxW`` as ``(H, W)``."""
    value = parse_pair(text, option)
    return (value, value) if isinstance(value, int) else value


def record_section(model: Any, key: str) -> dict[str, Any]:
    """The section ``key`` (``training``, ``data``) of the record of the checkpoint ``model`` was loaded
    from (empty without one)."""
    from featuremaps.files import parse_json
    from featuremaps.models.registry import checkpoint_folder

    folder = checkpoint_folder(model)
    try:
        record = parse_json((folder / "featuremaps.json").read_bytes()) if folder is not None else {}
    except (OSError, ValueError):
        return {}
    section = record.get(key) if isinstance(record, dict) else None
    return section if isinstance(section, dict) else {}
