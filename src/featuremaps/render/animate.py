"""Animations and diagrams of a convolution scene: GIF, MP4, PNG, SVG and JSON.

- GIF and MP4: one frame per step (``frames = D * H' * W'``, or every n-th step and the
  last with ``every=n``); the window moves by the stride, the output maps fill up.
- PNG and SVG: one static diagram: the first window, dashed windows one stride to the
  right and one stride down with arrows (the stride jumps), every map complete.
- JSON: the scene's data (:meth:`ConvScene.to_dict`).

MP4 needs the ``video`` extra (imageio + imageio-ffmpeg, whose wheel carries ffmpeg).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, overload

import numpy as np
from PIL import Image

from featuremaps.errors import SettingsError
from featuremaps.files import check_outputs, encode_picture, save_picture, write_output
from featuremaps.illustrate.scene import ConvScene
from featuremaps.render.diagram import SceneLayout, draw_scene, layout_scene
from featuremaps.render.drawing import RasterCanvas, SvgCanvas

__all__ = ["SCENE_FORMATS", "diagram_steps", "render_diagram", "render_frames", "save_scene"]

SCENE_FORMATS = (".gif", ".mp4", ".png", ".svg", ".json")


def diagram_steps(scene: ConvScene) -> tuple[int, tuple[int, ...]]:
    """The step a static diagram shows, and the neighbours whose windows show the stride jumps."""
    _, out_h, out_w = scene.output_shape
    neighbours = []
    if out_w > 1:
        neighbours.append(scene.step_index(0, 0, 1))
    if out_h > 1:
        neighbours.append(scene.step_index(0, 1, 0))
    return 0, tuple(neighbours)


@overload
def render_diagram(scene: ConvScene, *, svg: Literal[False] = False) -> Image.Image: ...


@overload
def render_diagram(scene: ConvScene, *, svg: Literal[True]) -> str: ...


@overload
def render_diagram(scene: ConvScene, *, svg: bool) -> Image.Image | str: ...


def render_diagram(scene: ConvScene, *, svg: bool = False) -> Image.Image | str:
    """The static diagram: a PIL image, or SVG markup when ``svg`` is True."""
    layout = layout_scene(scene)
    canvas = SvgCanvas(layout.width, layout.height) if svg else RasterCanvas(layout.width, layout.height)
    step, neighbours = diagram_steps(scene)
    draw_scene(scene, canvas, layout, step=step, done=len(scene) - 1, ghosts=neighbours,
               jumps=tuple((step, n) for n in neighbours))
    return canvas.markup() if isinstance(canvas, SvgCanvas) else canvas.image


def render_frames(scene: ConvScene, *, every: int = 1, layout: SceneLayout | None = None) -> Iterator[Image.Image]:
    """Frames of the animation, one per kept step (see :meth:`ConvScene.frame_steps`)."""
    layout = layout or layout_scene(scene)
    previous = None
    for index in scene.frame_steps(every):
        canvas = RasterCanvas(layout.width, layout.height)
        step = scene.step(index)
        ghosts: tuple[int, ...] = (previous,) if previous is not None and scene.step(previous).filter == step.filter \
            else ()
        draw_scene(scene, canvas, layout, step=index, ghosts=ghosts, jumps=tuple((g, index) for g in ghosts))
        previous = index
        yield canvas.image


def save_scene(scene: ConvScene, path: str | Path, *, every: int = 1, fps: float = 2.0,
               on_frame: Callable[[int, int], None] | None = None, overwrite: bool = False) -> int:
    """Write the scene to ``path`` by its suffix; returns the number of frames written.

    The write is atomic, and a file featuremaps did not write is replaced only with ``overwrite``
    (checked before any frame is drawn).

    A static PNG/SVG counts as 1 frame, JSON as 0. ``on_frame(done, total)`` is called after each
    frame of a GIF or MP4 is drawn.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SCENE_FORMATS:
        raise SettingsError(f"output must end in {', '.join(SCENE_FORMATS)}; got {str(path)!r}")
    if not 0.1 <= fps <= 60:
        raise SettingsError(f"fps must be from 0.1 to 60; got {fps}")
    check_outputs([path], overwrite=overwrite)
    if suffix == ".json":
        scene.write_json(path, overwrite=overwrite)
        return 0
    if suffix in (".png", ".svg"):
        save_picture(render_diagram(scene, svg=suffix == ".svg"), path, overwrite=overwrite)
        return 1
    total = len(scene.frame_steps(every))
    frames = []
    for frame in render_frames(scene, every=every):
        frames.append(frame)
        if on_frame is not None:
            on_frame(len(frames), total)
    write = _write_gif if suffix == ".gif" else _write_mp4
    write_output(path, lambda temp: write(frames, temp, fps), overwrite=overwrite)
    return len(frames)


def _write_gif(frames: list[Image.Image], path: Path, fps: float) -> None:
    """One palette for all frames (from the first and the finished last), no dithering: small, crisp."""
    first, last = frames[0], frames[-1]
    mosaic = Image.new("RGB", (first.width, first.height * 2))
    mosaic.paste(first, (0, 0))
    mosaic.paste(last, (0, first.height))
    palette = mosaic.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    indexed = [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    duration = int(1000 / fps)
    durations = [duration] * (len(frames) - 1) + [max(duration, 2500)]  # rest on the finished maps
    path.write_bytes(encode_picture(indexed[0], "GIF", save_all=True, append_images=indexed[1:], duration=durations,
                                    loop=0, optimize=True))


def _write_mp4(frames: list[Image.Image], path: Path, fps: float) -> None:
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise SettingsError("MP4 output needs the video extra: pip install 'featuremaps[video]'") from None
    width, height = frames[0].size
    even_w, even_h = width + (-width) % 16, height + (-height) % 16  # H.264 works on 16x16 blocks
    with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
                            macro_block_size=16, quality=8, ffmpeg_log_level="error") as writer:
        for frame in frames:
            canvas = Image.new("RGB", (even_w, even_h), (255, 255, 255))
            canvas.paste(frame, (0, 0))
            writer.append_data(np.asarray(canvas))  # type: ignore[attr-defined]  # imageio's stub misses it
