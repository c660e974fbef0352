"""``microscope``: a static site that shows, for every channel of every layer, the dataset
images that excite it most, cropped to the receptive field of the unit that fired.

The site is plain HTML files with the patches as PNGs beside them: it opens from the file
system (no server, no script fetching data). Pages: ``index.html`` (layers and their
channels, with statistics), ``<layer>/index.html`` (a tile per channel: its best patch),
``<layer>/<channel>.html`` (the K patches with values, positions and source images).
"""

from __future__ import annotations

import html
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from featuremaps.batch.store import Store
from featuremaps.drawing import font, to_pil
from featuremaps.errors import ImageError, SettingsError
from featuremaps.inputs import ModelInput

__all__ = ["build_microscope"]

logger = logging.getLogger(__name__)
_PATCH = 96
_STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:1.2em auto;max-width:1200px;color:#222;padding:0 1em}
a{color:#0a58ca;text-decoration:none} table{border-collapse:collapse} td,th{border:1px solid #ddd;padding:.2em .5em}
.tiles{display:flex;flex-wrap:wrap;gap:10px} .tile{width:112px;font-size:12px;text-align:center}
.tile img{width:96px;height:96px;image-rendering:pixelated;border:1px solid #ccc} nav{margin-bottom:1em}
.patch{display:inline-block;margin:6px;text-align:center;font-size:12px;vertical-align:top}
.patch img{width:144px;height:144px;image-rendering:pixelated;border:1px solid #bbb}"""


def _page(title: str, body: str, depth: int) -> str:
    home = "../" * depth + "index.html"
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><nav><a href='{home}'>microscope</a></nav>"
            f"<h1>{html.escape(title)}</h1>{body}</body></html>")


def _folder(layer: str) -> str:
    return layer.replace(":", "_").replace("/", "_")


@lru_cache(maxsize=256)
def _view(path: str, model_input: ModelInput) -> Image.Image:
    """The model's view of an image (its input before normalisation), as RGB (cached: many channels
    share their favourite images)."""
    return to_pil(model_input.display(path)).convert("RGB")


def _patch(path: str, model_input: ModelInput, layer: dict[str, Any], y: int, x: int) -> Image.Image:
    """The model's view of the image, cropped to unit ``(y, x)``'s receptive field (padding grey)."""
    view = _view(path, model_input)
    width, height = view.size
    size = [int(v) for v in layer["receptive_field"]]
    top = int(layer["start"][0] + y * layer["jump"][0])
    left = int(layer["start"][1] + x * layer["jump"][1])
    patch = Image.new("RGB", (size[1], size[0]), (128, 128, 128))
    patch.paste(view.crop((max(left, 0), max(top, 0), min(left + size[1], width), min(top + size[0], height))),
                (max(-left, 0), max(-top, 0)))
    return patch.resize((_PATCH, _PATCH), Image.Resampling.BILINEAR if max(size) > _PATCH else
                        Image.Resampling.NEAREST)


def _missing() -> Image.Image:
    image = Image.new("RGB", (_PATCH, _PATCH), (235, 235, 235))
    ImageDraw.Draw(image).text((8, 40), "unreadable", fill=(120, 120, 120), font=font(12))
    return image


def build_microscope(store_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the site for a finished store; return ``out_dir/index.html``."""
    store = Store(store_dir)
    manifest = store.manifest()
    if manifest.status != "complete":
        raise SettingsError(f"{store_dir}: the extraction has not finished; run it again with --resume first")
    if not manifest.config.get("top_k"):
        raise SettingsError(f"{store_dir}: the store was made with --top-k 0; the microscope needs the top images")
    model_input = ModelInput.from_dict(manifest.config["preprocessing"])
    top = store.table("topk").to_pylist()
    stats = store.table("stats").to_pylist()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[str] = []
    unreadable: list[str] = []
    for layer in manifest.layers:
        name = layer["name"]
        folder = out / _folder(name)
        folder.mkdir(exist_ok=True)
        layer_top = [t for t in top if t["layer"] == name]
        layer_stats = {s["channel"]: s for s in stats if s["layer"] == name}
        tiles = []
        for channel in range(layer["channels"]):
            best = sorted((t for t in layer_top if t["channel"] == channel), key=lambda t: t["rank"])
            figures = []
            for entry in best:
                file = folder / f"c{channel}-r{entry['rank']}.png"
                try:
                    _patch(entry["path"], model_input, layer, entry["y"], entry["x"]).save(file)
                except (ImageError, OSError) as error:
                    unreadable.append(f"{entry['path']}: {getattr(error, 'reason', None) or error}")
                    _missing().save(file)
                figures.append(
                    f"<div class='patch'><img src='{file.name}' alt='patch'><br>#{entry['rank'] + 1}: "
                    f"{entry['value']:.3g} at ({entry['y']}, {entry['x']})<br>"
                    f"<a href='{html.escape(Path(entry['path']).resolve().as_uri())}'>"
                    f"{html.escape(Path(entry['path']).name)}</a></div>"
                )
            info_row = layer_stats.get(channel, {})
            facts = (f"mean {info_row.get('mean', 0):.3g}, std {info_row.get('std', 0):.3g}, max "
                     f"{info_row.get('max', 0):.3g}, above zero {info_row.get('fraction_positive', 0):.1%}")
            body = (f"<p>{html.escape(facts)}. Patches: the receptive field of the unit that fired "
                    f"({int(layer['receptive_field'][0])}x{int(layer['receptive_field'][1])} input pixels; grey "
                    f"= padding).</p>" + "".join(figures))
            (folder / f"{channel}.html").write_text(_page(f"{name} channel {channel}", body, 1))
            thumb = f"c{channel}-r0.png" if best else ""
            tiles.append(f"<div class='tile'><a href='{channel}.html'>"
                         + (f"<img src='{thumb}' alt='channel {channel}'>" if thumb else "") +
                         f"<br>#{channel} max {info_row.get('max', 0):.3g}</a></div>")
        (folder / "index.html").write_text(_page(f"{name}: {layer['channels']} channels",
                                                 f"<div class='tiles'>{''.join(tiles)}</div>", 1))
        rows.append(f"<tr><td><a href='{_folder(name)}/index.html'>{html.escape(name)}</a></td>"
                    f"<td>{html.escape(layer['type'])}</td><td>{'x'.join(map(str, layer['output_shape']))}</td>"
                    f"<td>{int(layer['jump'][0]) if layer['jump'] else '-'}</td>"
                    f"<td>{int(layer['receptive_field'][0]) if layer['receptive_field'] else '-'}</td></tr>")
    summary = manifest.summary
    body = (f"<p>Model {html.escape(str(manifest.config['model']))}, {manifest.images} images "
            f"({summary.get('readable', '?')} readable), top {manifest.config['top_k']} per channel.</p>"
            "<table><tr><th>layer</th><th>type</th><th>maps</th><th>stride</th><th>receptive field</th></tr>"
            + "".join(rows) + "</table>")
    if top and len(unreadable) == len(top):
        raise ImageError(str(store_dir), f"none of the {len(top)} top images could be read, so every patch would be "
                                         f"blank (first: {unreadable[0]}); were the images moved or deleted?")
    if unreadable:
        logger.warning("%d of %d patches show 'unreadable' (first: %s)", len(unreadable), len(top), unreadable[0])
    index = out / "index.html"
    index.write_text(_page("featuremaps microscope", body, 0))
    return index
