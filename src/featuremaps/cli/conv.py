"""``featuremaps conv``: one convolution layer over an image."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, cast

import typer

from featuremaps.cli._common import (
    Depth,
    Dilation,
    Groups,
    OutputPadding,
    Overwrite,
    PaddingMode,
    PaddingOption,
    Relu,
    Scale,
    Seed,
    Stride,
    TileSize,
    Transposed,
    app,
    make_layer,
    print_json,
)
from featuremaps.errors import SettingsError

if TYPE_CHECKING:
    from featuremaps.render.grid import Normalization


_PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


_MAX_VALUES = 2**28
"""1 GiB of float32 maps: the most ``featuremaps conv`` computes in one go."""


@app.command("conv")
def conv_command(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="Image file or sample:NAME (see 'featuremaps samples').")],
    filters: Annotated[str, typer.Option(metavar="NAME[,NAME]|FILE.npy", help="Bank name(s), comma separated (see 'featuremaps banks'), or FILE.npy.")] = "random",
    depth: Depth = None,
    kernel_size: Annotated[Optional[str], typer.Option(metavar="K|KHxKW", help="Filter size (sizeable banks: "
                                                       "gaussian, box, gabor, random, random_int).")] = None,
    stride: Stride = "1",
    padding: PaddingOption = "0",
    padding_mode: PaddingMode = "zeros",
    dilation: Dilation = "1",
    groups: Groups = 1,
    transposed: Transposed = False,
    output_padding: OutputPadding = "0",
    relu: Relu = False,
    seed: Seed = 0,
    gray: Annotated[bool, typer.Option("--gray", help="Convert the image to one gray channel first.")] = False,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar="MAPS.png", help="Write the maps as a picture (.png, .jpg, .webp).")] = None,
    save: Annotated[Optional[Path], typer.Option(metavar="MAPS.npy", help="Write the raw maps [D, H', W'] as .npy.")] = None,
    cmap: Annotated[str, typer.Option(metavar="NAME", help="Matplotlib colormap of the picture.")] = "viridis",
    normalize: Annotated[str, typer.Option(metavar="map|shared", help="Colour scale per map ('map') or one for all ('shared').")] = "map",
    clip: Annotated[float, typer.Option(metavar="PERCENT", help="Percent of values saturated at each end of the colour scale.")] = 1.0,
    tile_size: TileSize = 160,
    scale: Scale = None,
    overwrite: Overwrite = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run one convolution layer over an image and show or save its feature maps."""
    from featuremaps.conv.geometry import output_size_formula
    from featuremaps.files import check_outputs, save_picture
    from featuremaps.images import load_image
    from featuremaps.render.grid import NORMALIZATIONS, check_tiles, render_grid, save_maps

    if output is not None and output.suffix.lower() not in _PICTURE_SUFFIXES:
        raise SettingsError(f"-o must end in {', '.join(_PICTURE_SUFFIXES)}; got {str(output)!r}")
    if save is not None and save.suffix.lower() != ".npy":
        raise SettingsError(f"--save must end in .npy; got {str(save)!r}")
    check_outputs([p for p in (output, save) if p is not None], overwrite=overwrite)
    if normalize not in NORMALIZATIONS:
        raise SettingsError(f"--normalize must be one of {', '.join(NORMALIZATIONS)}; got {normalize!r}")
    check_tiles(tile_size, scale)
    tensor = load_image(image, mode="gray" if gray else "auto")
    layer = make_layer(tensor.shape[0], filters, depth=depth, kernel_size=kernel_size, stride=stride, padding=padding,
                       padding_mode=padding_mode, dilation=dilation, groups=groups, relu=relu, seed=seed,
                       transposed=transposed, output_padding=output_padding)
    cost = layer.cost(tuple(tensor.shape))
    if cost.output_values > _MAX_VALUES:
        raise SettingsError(f"{layer.depth} maps of {'x'.join(map(str, layer.output_shape(tuple(tensor.shape))[1:]))} "
                            f"are {cost.output_values:,} values ({cost.output_values * 4 / 2**30:.1f} GiB), over the "
                            f"{_MAX_VALUES * 4 / 2**30:.0f} GiB this command computes; use a smaller --depth or a "
                            "larger --stride")
    if cost.multiply_adds > 2e9:
        typer.echo(f"computing {layer.depth} maps: {cost.multiply_adds / 1e9:.1f} G multiply-adds, "
                   f"{cost.output_values * 4 / 2**20:,.0f} MiB of maps...", err=True)
    maps = layer(tensor)
    size = (tensor.shape[1], tensor.shape[2])
    concrete = layer.geometry.resolve_padding(size)
    written = {}
    if output is not None:
        picture = render_grid(maps, names=layer.filter_names, cmap=cmap, clip=clip,
                              normalize=cast("Normalization", normalize),  # render_grid checks the value
                              title=f"{image}: {filters}", tile_size=tile_size, scale=scale)
        written["picture"] = str(save_picture(picture, output, overwrite=overwrite))
    if save is not None:
        written["npy"] = str(save_maps(maps, save, overwrite=overwrite))
    stats = [
        {"index": i, "name": name, "min": float(m.min()), "max": float(m.max()), "mean": float(m.mean())}
        for i, (name, m) in enumerate(zip(layer.filter_names, maps))
    ]
    report: dict[str, Any] = {
        "image": image,
        "input_shape": list(tensor.shape),
        "output_shape": list(maps.shape),
        "filters": filters,
        "depth": layer.depth,
        "kernel_size": list(layer.kernel_size),
        "stride": list(layer.stride),
        "padding": [concrete.top, concrete.bottom, concrete.left, concrete.right],
        "padding_mode": layer.padding_mode,
        "dilation": list(layer.dilation),
        "groups": layer.groups,
        "transposed": layer.transposed,
        "output_padding": list(layer.geometry.output_padding),
        "formula": list(output_size_formula(layer.geometry, size)),
        "maps": stats,
        "written": written,
    }
    if as_json:
        print_json(report)
        return
    shape_in = "x".join(str(s) for s in tensor.shape)
    shape_out = "x".join(str(s) for s in maps.shape)
    typer.echo(f"input   {shape_in}  ({image})")
    kind = (f"transposed (output padding {layer.geometry.output_padding[0]}x{layer.geometry.output_padding[1]}), "
            if layer.transposed else "")
    typer.echo(
        f"layer   {kind}{layer.depth} filters {layer.kernel_size[0]}x{layer.kernel_size[1]}, stride {layer.stride}, "
        f"padding top/bottom/left/right {report['padding']} ({layer.padding_mode}), dilation {layer.dilation}, "
        f"groups {layer.groups}"
    )
    typer.echo(f"output  {shape_out}  (D x H' x W')")
    for line in report["formula"]:
        typer.echo(f"        {line}")
    for i, (name, m) in enumerate(zip(layer.filter_names, maps)):
        typer.echo(f"  map {i:>3} {name:<14} min {float(m.min()):>9.4g}  max {float(m.max()):>9.4g}  "
                   f"mean {float(m.mean()):>9.4g}")
    for path in written.values():
        typer.echo(f"wrote {path}")
    if not written:
        typer.echo("(use -o maps.png to draw the maps, --save maps.npy to keep them)")
