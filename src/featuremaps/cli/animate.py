"""``featuremaps animate``: a convolution step by step (GIF, MP4, diagram, scene data)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

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
    Seed,
    Stride,
    Transposed,
    app,
    make_layer,
    parse_size,
    print_json,
)
from featuremaps.errors import SettingsError

if TYPE_CHECKING:
    from featuremaps.illustrate.scene import SceneKind


MAX_FRAMES = 2000


@app.command("animate")
def animate_command(
    output: Annotated[Path, typer.Option("-o", "--output", metavar="OUT.gif|mp4|png|svg|json",
                                         help="Animation (.gif, .mp4), diagram (.png, .svg) or scene data (.json).")],
    image: Annotated[Optional[str], typer.Argument(metavar="IMAGE", help="Image or sample:NAME to shrink to "
                                                   "--input-size; without it a seeded grid of integers 0..9.")] = None,
    input_size: Annotated[str, typer.Option(metavar="HxW", help="Size of the input grid.")] = "7x7",
    channels: Annotated[Optional[int], typer.Option(metavar="C", help="Input channels (default 1; 3 for an image).")] = None,
    depth: Depth = None,
    filters: Annotated[str, typer.Option(metavar="NAME", help="Filter bank; random_int draws integers -1..1.")] = "random_int",
    kernel_size: Annotated[str, typer.Option(metavar="K|KHxKW", help="Filter size.")] = "3",
    stride: Stride = "1",
    padding: PaddingOption = "0",
    padding_mode: PaddingMode = "zeros",
    dilation: Dilation = "1",
    groups: Groups = 1,
    transposed: Transposed = False,
    output_padding: OutputPadding = "0",
    bias: Annotated[Optional[float], typer.Option(metavar="B", help="The same bias for every filter.")] = None,
    relu: Relu = False,
    seed: Seed = 0,
    every: Annotated[int, typer.Option(metavar="N", help="Keep every N-th step as a frame (and the last).")] = 1,
    fps: Annotated[float, typer.Option(metavar="F", help="Frames per second of GIF and MP4 (0.1 to 60).")] = 2.0,
    overwrite: Overwrite = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Animate a convolution step by step: one frame per output value of every filter."""
    from featuremaps.files import check_outputs
    from featuremaps.illustrate.scene import ConvScene, image_patch, random_grid
    from featuremaps.render.animate import SCENE_FORMATS, save_scene

    if output.suffix.lower() not in SCENE_FORMATS:
        raise SettingsError(f"-o must end in {', '.join(SCENE_FORMATS)}; got {str(output)!r}")
    if not 0.1 <= fps <= 60:
        raise SettingsError(f"--fps must be from 0.1 to 60; got {fps:g}")
    if every < 1:
        raise SettingsError(f"--every must be an integer >= 1; got {every}")
    check_outputs([output], overwrite=overwrite)
    height, width = parse_size(input_size, "--input-size")
    kind: SceneKind
    if image is None:
        x = random_grid(height, width, channels or 1, seed=seed)
        kind = "grid"
    else:
        x = image_patch(image, height, width, channels=channels or 3)
        kind = "image"
    if depth is None and filters in ("random", "random_int"):
        depth = 2
    layer = make_layer(x.shape[0], filters, depth=depth, kernel_size=kernel_size, stride=stride, padding=padding,
                       padding_mode=padding_mode, dilation=dilation, groups=groups, relu=relu, seed=seed,
                       transposed=transposed, output_padding=output_padding, bias=bias)
    scene = ConvScene.from_layer(layer, x, kind=kind)
    suffix = output.suffix.lower()
    if suffix in (".gif", ".mp4") and len(scene.frame_steps(every)) > MAX_FRAMES:
        raise SettingsError(
            f"{len(scene.frame_steps(every))} frames is more than {MAX_FRAMES}; use --every "
            f"{-(-len(scene) // MAX_FRAMES)} or a smaller input"
        )
    from featuremaps.cli._progress import CountBar, stderr

    count = len(scene.frame_steps(every))
    if suffix in (".gif", ".mp4") and count / fps > 60:
        minutes, seconds = divmod(round(count / fps), 60)
        faster = max(2, -(-count // int(60 * fps)))
        stderr.print(f"animate: warning: {count} frames at {fps:g} fps play for {minutes} min {seconds:02d} s; "
                     f"--every {faster} or --fps {min(60, -(-count // 60))} makes it a minute or less", markup=False,
                     highlight=False)
    with CountBar("frames", "frame") as bar:
        frames = save_scene(scene, output, every=every, fps=fps, overwrite=overwrite,
                            on_frame=bar.update if suffix in (".gif", ".mp4") else None)
    summary = {
        "input_shape": list(x.shape),
        "output_shape": list(scene.output_shape),
        "steps": len(scene),
        "frames": frames,
        "formula": list(scene.formula),
        "output": str(output),
    }
    if as_json:
        print_json(summary)
        return
    depth_, out_h, out_w = scene.output_shape
    typer.echo(f"{'x'.join(map(str, x.shape))} input -> {depth_}x{out_h}x{out_w} maps, {len(scene)} steps")
    for line in scene.formula:
        typer.echo(f"  {line}")
    typer.echo(f"wrote {output} ({frames} frame{'s' if frames != 1 else ''})")
