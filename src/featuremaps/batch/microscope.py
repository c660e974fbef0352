"""``microscope``: a static site that shows what every channel of every layer responds to.

For each channel: its top-K dataset patches, each cropped to the receptive field of the unit
that fired **clipped to the image** (a unit that sees the whole image shows the whole image),
with the channel's activation drawn over the patch as a heat map and its value; the channel's
statistics; and, with ``visualize=True``, the image optimised to excite it (feature
visualisation, :mod:`featuremaps.optvis`).

The site is compact: per layer one HTML page and a few image sprites (64 channels each), so
its size and file count grow with layers and channels, never with the number of patches.
Each layer page is a contact sheet of all its channels (sortable by mean, maximum or
selectivity) and a channel view (``layer/index.html#12``) with previous/next and a jump box.
Everything is in the files (the data as JSON inside the page): it opens from the file system.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import torch
from PIL import Image, ImageDraw

from featuremaps.batch.store import Store
from featuremaps.errors import FeatureMapsError, ImageError, LayerError, SettingsError
from featuremaps.features import FeatureExtractor, sample_maps
from featuremaps.features.inputs import ModelInput
from featuremaps.files import check_outputs, encode_picture, safe_name, write_output
from featuremaps.images import read_image_file
from featuremaps.render.drawing import apply_colormap, font, to_pil

__all__ = ["PATCH", "SITE_LAYERS", "SPRITE_CHANNELS", "build_microscope", "read_patches", "site_layers"]

logger = logging.getLogger(__name__)
PATCH = 96
"""Side of one patch (and one visualisation) in the sprites, in pixels."""
SPRITE_CHANNELS = 64
"""Channels per sprite image."""
SITE_LAYERS = "layers.json"
"""The file of a built site that maps each layer name to its folder."""
Progress = Callable[[str, int, int], None]
"""``(stage, done, total)``: ``images`` (patches drawn) or ``visualize`` (optimisation steps)."""


@dataclass(frozen=True)
class _Geometry:
    """Where a layer's units sit on the model input (None: the layer sees the whole image)."""

    start: tuple[float, float] | None
    jump: tuple[float, float] | None
    size: tuple[float, float] | None

    @classmethod
    def of(cls, layer: dict[str, Any]) -> _Geometry:
        def pair(key: str) -> tuple[float, float] | None:
            value = layer.get(key)
            return (float(value[0]), float(value[1])) if value else None

        return cls(pair("start"), pair("jump"), pair("receptive_field"))

    def box(self, y: int, x: int, height: int, width: int) -> tuple[int, int, int, int]:
        """Unit ``(y, x)``'s receptive field on a ``height x width`` input, clipped to it: (left, top, right, bottom)."""
        if self.start is None or self.jump is None or self.size is None:
            return (0, 0, width, height)
        top, left = self.start[0] + y * self.jump[0], self.start[1] + x * self.jump[1]
        box = (max(0, math.floor(left)), max(0, math.floor(top)),
               min(width, math.ceil(left + self.size[1])), min(height, math.ceil(top + self.size[0])))
        return box if box[2] > box[0] and box[3] > box[1] else (0, 0, width, height)

    def heat(self, channel_map: torch.Tensor, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """The map ``(h, w)`` read at input positions ``ys`` x ``xs`` (pixel centres), each unit at its
        receptive field's centre (:func:`~featuremaps.features.sample_maps`): ``(len(ys), len(xs))``."""
        if self.start is None or self.jump is None or self.size is None:
            return np.full((len(ys), len(xs)), float(channel_map.float().mean()), dtype=np.float32)
        sampled = sample_maps(channel_map[None, None], self.start, self.jump, self.size,
                              torch.from_numpy(np.asarray(ys, dtype=np.float32)),
                              torch.from_numpy(np.asarray(xs, dtype=np.float32)))
        return sampled[0, 0].numpy()


def _patch(view: Image.Image, box: tuple[int, int, int, int],
           heat: Callable[[np.ndarray, np.ndarray], np.ndarray] | None, peak: float) -> Image.Image:
    """The model's view cropped to ``box`` and fitted into a ``PATCH`` square (aspect kept, white around),
    with the channel's heat (0..``peak``, clipped) blended over it; ``heat(ys, xs)`` reads the map."""
    left, top, right, bottom = box
    scale = PATCH / max(right - left, bottom - top)
    size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
    resample = Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.BILINEAR
    picture = view.crop(box).resize(size, resample)
    if heat is not None and peak > 0:
        ys = top + (np.arange(size[1]) + 0.5) / scale - 0.5  # tile pixel centres on the input
        xs = left + (np.arange(size[0]) + 0.5) / scale - 0.5
        values = np.clip(heat(ys, xs) / peak, 0, 1)
        colours = Image.fromarray(apply_colormap(values, 0.0, 1.0, "inferno"))
        picture = Image.composite(colours, picture, Image.fromarray((values * 150).astype(np.uint8)))
    tile = Image.new("RGB", (PATCH, PATCH), (255, 255, 255))
    tile.paste(picture, ((PATCH - size[0]) // 2, (PATCH - size[1]) // 2))
    return tile


def _letterbox(image: Image.Image) -> Image.Image:
    """A whole image fitted into a ``PATCH`` square."""
    return _patch(image, (0, 0, image.width, image.height), None, 0.0)


def _unreadable() -> Image.Image:
    image = Image.new("RGB", (PATCH, PATCH), (235, 235, 235))
    ImageDraw.Draw(image).text((8, 40), "unreadable", fill=(120, 120, 120), font=font(12))
    return image


def _folders(layers: Sequence[str]) -> dict[str, str]:
    """A folder name per layer, each one safe (:func:`~featuremaps.files.safe_name`) and distinct."""
    found: dict[str, str] = {}
    for name in layers:
        base = safe_name(name)
        folder, n = base, 2
        while folder in found.values() or folder.lower() in ("index.html", SITE_LAYERS):
            folder, n = f"{base}-{n}", n + 1
        found[name] = folder
    return found


def site_layers(site: str | Path) -> dict[str, Path]:
    """The layer folders of a built site, by layer name (from its ``layers.json``); empty when there is none."""
    root = Path(site)
    try:
        data = json.loads((root / SITE_LAYERS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(name): root / safe_name(str(folder)) for name, folder in data.items()}


class _Sprites:
    """Patch tiles of one layer in sprites of ``SPRITE_CHANNELS`` rows (channels) by ``columns`` tiles."""

    def __init__(self, channels: int, columns: int, prefix: str) -> None:
        self.channels, self.columns, self.prefix = channels, max(columns, 1), prefix
        self.sheets: dict[int, Image.Image] = {}

    def place(self, channel: int, column: int, tile: Image.Image) -> None:
        sheet, row = divmod(channel, SPRITE_CHANNELS)
        if sheet not in self.sheets:
            rows = min(SPRITE_CHANNELS, self.channels - sheet * SPRITE_CHANNELS)
            self.sheets[sheet] = Image.new("RGB", (self.columns * PATCH, rows * PATCH), (255, 255, 255))
        self.sheets[sheet].paste(tile, (column * PATCH, row * PATCH))

    def where(self, channel: int, column: int) -> list[Any]:
        sheet, row = divmod(channel, SPRITE_CHANNELS)
        return [f"{self.prefix}-{sheet}.jpg", column * PATCH, row * PATCH]

    def names(self) -> list[str]:
        """The sprite files this layer can have (every sheet, placed or not)."""
        return [f"{self.prefix}-{sheet}.jpg" for sheet in range(-(-self.channels // SPRITE_CHANNELS))]

    def save(self, folder: Path, *, overwrite: bool) -> list[Path]:
        paths = []
        for sheet, image in sorted(self.sheets.items()):
            path = folder / f"{self.prefix}-{sheet}.jpg"
            write_output(path, partial(_save_jpeg, image), overwrite=overwrite)
            paths.append(path)
        return paths


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _save_jpeg(image: Image.Image, path: Path) -> None:
    path.write_bytes(encode_picture(image, "JPEG", quality=88))


def _load(manifest_config: dict[str, Any]) -> torch.nn.Module | None:
    from featuremaps.models import load_model

    try:
        return load_model(manifest_config["model"], weights=manifest_config.get("weights"))
    except (FeatureMapsError, OSError, ImportError) as error:
        logger.warning("no heat maps or visualisations: model %s cannot be loaded here (%s)",
                       manifest_config["model"], error)
        return None


def _maps_per_image(model: torch.nn.Module | None, layers: Sequence[str], model_input: ModelInput,
                    hashes: dict[int, str]) -> Callable[[int, str], tuple[Image.Image, dict[str, torch.Tensor] | None]]:
    """A function: (index, path) -> (the model's view of the image, its maps ``{layer: (C, h, w)}`` or None).

    Only a regular file whose SHA-256 is the one the extraction recorded for that index is read: a
    store can name no other file on this machine (a crafted store cannot make the site show it).
    """
    extractor = None
    if model is not None:
        try:
            extractor = FeatureExtractor(model, list(layers))
        except LayerError as error:  # a store whose layers this model does not have (damaged, or crafted)
            logger.warning("no heat maps: %s", error)

    def read(index: int, path: str) -> tuple[Image.Image, dict[str, torch.Tensor] | None]:
        expected = hashes.get(index)
        if expected is None:
            raise ImageError(path, "the extraction recorded no checksum for it (it was unreadable then)")
        data = read_image_file(path)
        if hashlib.sha256(data).hexdigest() != expected:
            raise ImageError(path, "it changed since the extraction (its SHA-256 differs), so its maps would not "
                                   "match; extract again")
        prepared = model_input.prepare(data)  # uint8 (C, H, W): what the model sees
        view = to_pil(model_input.picture(prepared)).convert("RGB")
        if extractor is None:
            return view, None
        maps = extractor(model_input.normalise(prepared)[None])
        return view, {name: tensor[0].float() for name, tensor in maps.items()}

    return read


def _top_entries(store: Store, layers: dict[str, dict[str, Any]], k: int, sources: list[str]) -> list[dict[str, Any]]:
    """The store's top-k rows, each checked against the manifest and the image list (a crafted or damaged
    ``topk.parquet`` is refused whole): the image of a row is ``sources[index]``, never a path of its own."""
    top = store.table("topk").to_pylist()
    for number, entry in enumerate(top):
        layer = layers.get(str(entry.get("layer")))
        index, channel, rank = entry.get("index"), entry.get("channel"), entry.get("rank")
        problem = None
        if layer is None:
            problem = f"layer {short_text(entry.get('layer'))} is not in the manifest"
        elif not isinstance(channel, int) or not 0 <= channel < layer["channels"]:
            problem = f"channel {short_text(channel)} is out of range"
        elif not isinstance(rank, int) or not 0 <= rank < k:
            problem = f"rank {short_text(rank)} is out of range"
        elif not isinstance(index, int) or not 0 <= index < len(sources):
            problem = f"image {short_text(index)} is not in the store's image list"
        elif entry.get("path") != sources[index]:
            problem = f"its path is not image {index} of the store's image list"
        elif not all(isinstance(entry.get(key), int) and entry[key] >= 0 for key in ("y", "x")) or not isinstance(
                entry.get("value"), (int, float)) or not math.isfinite(entry["value"]):
            problem = "its position or value is not a number"
        if problem is not None:
            raise SettingsError(f"{store.root}: topk.parquet row {number} does not match the store ({problem}): a "
                                "damaged or crafted store; extract again into a new --out")
    return top


def short_text(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters (for messages about values read from a file)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _display_names(paths: Sequence[str]) -> dict[str, str]:
    """Each path relative to the folder the store's images share (``cats/1.jpg``): pages show no absolute path."""
    if not paths:
        return {}
    try:
        root = os.path.commonpath([os.path.dirname(p) for p in paths])
    except ValueError:  # mixed drives or relative and absolute paths
        root = ""
    return {p: os.path.relpath(p, root) if root else Path(p).name for p in paths}


def build_microscope(store_dir: str | Path, out_dir: str | Path, *, visualize: bool = False, vis_steps: int = 128,
                     vis_size: int | None = None, progress: Progress | None = None, link_images: bool = True,
                     overwrite: bool = False) -> Path:
    """Write the site for a finished store; return ``out_dir/index.html``.

    Args:
        visualize: also optimise one image per channel (slow on a CPU: ``vis_steps`` steps per 16 channels).
        vis_steps, vis_size: steps and side of the visualisations (default side: the model's input, at most 128).
        progress: called with ``(stage, done, total)``.
        link_images: link each patch to its image file (``file://``; off for a site a server shows).
        overwrite: replace files in ``out_dir`` that featuremaps did not write (checked before any work).

    A store may come from anywhere: its manifest and top-k rows are checked, layer folders are
    safe names inside ``out_dir``, each image is ``sources[index]`` of the store's own list and is
    read only when its SHA-256 is the one the extraction recorded, and every text is escaped.
    """
    store = Store(store_dir)
    manifest = store.manifest()
    if manifest.status != "complete":
        raise SettingsError(f"{store_dir}: the extraction has not finished; run it again with --resume first")
    k = manifest.config.get("top_k")
    if not k:
        raise SettingsError(f"{store_dir}: the store was made with --top-k 0; the microscope needs the top images")
    if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= 1000:
        raise SettingsError(f"{store_dir}: damaged manifest (top_k must be an integer from 1 to 1000; got "
                            f"{short_text(k)})")
    model_input = ModelInput.from_dict(manifest.config["preprocessing"])
    layers = {layer["name"]: layer for layer in manifest.layers}
    folders = _folders(list(layers))
    sprites = {name: _Sprites(layer["channels"], k, "patches") for name, layer in layers.items()}
    out = Path(out_dir)
    planned = [out / "index.html", out / SITE_LAYERS]
    for name, folder_name in folders.items():
        planned += [out / folder_name / "index.html", *(out / folder_name / n for n in sprites[name].names())]
        if visualize:
            planned += [out / folder_name / n for n in _Sprites(layers[name]["channels"], 1, "vis").names()]
    check_outputs(planned, overwrite=overwrite)
    sources = store.sources()
    top = _top_entries(store, layers, k, sources)
    stats = store.table("stats").to_pylist()
    peaks: dict[tuple[str, int], float] = defaultdict(float)
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in top:
        by_image[entry["index"]].append(entry)
        peaks[(entry["layer"], entry["channel"])] = max(peaks[(entry["layer"], entry["channel"])], entry["value"])
    names = _display_names([sources[index] for index in by_image])
    model = _load(manifest.config)
    read = _maps_per_image(model, list(layers), model_input, store.image_hashes())
    geometries = {name: _Geometry.of(layer) for name, layer in layers.items()}
    unreadable: list[str] = []
    done = 0
    for index, entries in by_image.items():
        path = sources[index]
        try:
            view, maps = read(index, path)
        except (ImageError, OSError) as error:
            unreadable.append(f"{names[path]}: {getattr(error, 'reason', None) or error}")
            for entry in entries:
                sprites[entry["layer"]].place(entry["channel"], entry["rank"], _unreadable())
        else:
            for entry in entries:
                name, channel = entry["layer"], entry["channel"]
                geometry = geometries[name]
                box = geometry.box(entry["y"], entry["x"], view.height, view.width)
                heat = None if maps is None else partial(geometry.heat, maps[name][channel])
                sprites[name].place(channel, entry["rank"], _patch(view, box, heat, peaks[(name, channel)]))
        done += len(entries)
        if progress is not None:
            progress("images", done, len(top))
    if top and len(unreadable) == len(by_image):
        raise ImageError(str(store_dir), f"none of the {len(by_image)} top images could be read, so every patch would "
                                         f"be blank (first: {unreadable[0]}); were the images moved or deleted?")
    if unreadable:
        logger.warning("%d of %d top images show 'unreadable' (first: %s)", len(unreadable), len(by_image),
                       unreadable[0])
    visual = _visualisations(model, layers, vis_steps, vis_size, progress) if visualize and model is not None else {}
    rows = []
    for name, layer in layers.items():
        folder = out / folders[name]
        sprites[name].save(folder, overwrite=overwrite)
        vis_sprite = visual.get(name)
        if vis_sprite is not None:
            vis_sprite.save(folder, overwrite=overwrite)
        data = _layer_data(name, layer, top, stats, sprites[name], vis_sprite, manifest.weights_label, unreadable,
                           sources, names, link_images)
        page = _layer_page(name, data)
        write_output(folder / "index.html", partial(_write_text, text=page), overwrite=overwrite)
        rows.append(f"<tr><td><a href='{html.escape(quote(folders[name]))}/index.html'>{html.escape(name)}</a></td>"
                    f"<td>{html.escape(layer['type'])}</td>"
                    f"<td>{html.escape('x'.join(map(str, layer['output_shape'])))}</td>"
                    f"<td>{int(layer['jump'][0]) if layer['jump'] else '-'}</td>"
                    f"<td>{int(layer['receptive_field'][0]) if layer['receptive_field'] else '-'}</td>"
                    f"<td>{'yes' if vis_sprite is not None else 'no'}</td></tr>")
    write_output(out / SITE_LAYERS, partial(_write_text, text=json.dumps(folders, indent=1)), overwrite=overwrite)
    summary = manifest.summary
    untrained = manifest.weights_label.startswith("untrained")
    body = (f"<p>Model {html.escape(str(manifest.config['model']))} "
            f"(<b class='{'warn' if untrained else ''}'>{html.escape(manifest.weights_label)}</b>), "
            f"{manifest.images} images ({summary.get('readable', '?')} readable), top {k} per channel.</p>"
            "<table><tr><th>layer</th><th>type</th><th>maps</th><th>stride</th><th>receptive field</th>"
            "<th>visualisations</th></tr>" + "".join(rows) + "</table>")
    site = _page(f"featuremaps microscope{' (untrained: random weights)' if untrained else ''}", body, 0)
    return write_output(out / "index.html", partial(_write_text, text=site), overwrite=overwrite)


def _visualisations(model: torch.nn.Module, layers: dict[str, dict[str, Any]], steps: int, size: int | None,
                    progress: Progress | None) -> dict[str, _Sprites]:
    from featuremaps.models import model_info
    from featuremaps.optvis import channel, visualize

    side = size or min(128, min(model_info(model).input.size))
    total = sum(math.ceil(layer["channels"] / 16) * steps for layer in layers.values())
    done = 0
    result = {}
    for name, layer in layers.items():
        sprite = _Sprites(layer["channels"], 1, "vis")
        offset = done

        def report(step: int, _total: int, offset: int = offset) -> None:
            if progress is not None:
                progress("visualize", offset + step, total)

        found = visualize(model, [channel(name, c) for c in range(layer["channels"])], steps=steps, size=side,
                          progress=report)
        done += math.ceil(layer["channels"] / 16) * steps
        for index, image in enumerate(found.images):
            sprite.place(index, 0, _letterbox(to_pil(image).convert("RGB")))
        result[name] = sprite
    return result


def _layer_data(name: str, layer: dict[str, Any], top: list[dict[str, Any]], stats: list[dict[str, Any]],
                sprite: _Sprites, vis: _Sprites | None, weights: str, unreadable: list[str], sources: list[str],
                names: dict[str, str], link_images: bool) -> dict[str, Any]:
    per_channel: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in top:
        if entry["layer"] == name:
            per_channel[entry["channel"]].append(entry)
    layer_stats = {s["channel"]: s for s in stats if s["layer"] == name}
    channels = []
    for c in range(layer["channels"]):
        s = layer_stats.get(c, {})
        mean, std, peak = (_number(s.get(key)) for key in ("mean", "std", "max"))
        patches = [{"rank": e["rank"], "value": e["value"], "y": e["y"], "x": e["x"],
                    "name": names[sources[e["index"]]],
                    "uri": Path(sources[e["index"]]).as_uri() if link_images and os.path.isabs(sources[e["index"]])
                    else None, "sprite": sprite.where(c, e["rank"])}
                   for e in sorted(per_channel.get(c, []), key=lambda e: e["rank"])]
        channels.append({"channel": c, "mean": mean, "std": std, "max": peak,
                         "positive": _number(s.get("fraction_positive")),
                         "selectivity": (peak - mean) / std if std > 0 else 0.0,
                         "patches": patches, "vis": vis.where(c, 0) if vis is not None else None})
    return {"layer": name, "type": layer["type"], "shape": layer["output_shape"],
            "rf": layer["receptive_field"], "weights": weights, "patch": PATCH, "channels": channels,
            "unreadable": len(unreadable)}


def _number(value: Any) -> float:
    """A statistic read from the store as a finite float (0 when it is missing or not a number)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


_STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:1.2em auto;max-width:1200px;color:#222;padding:0 1em}
a{color:#0a58ca;text-decoration:none} table{border-collapse:collapse} td,th{border:1px solid #ddd;padding:.2em .5em}
.warn{color:#b42828} nav{margin-bottom:1em;display:flex;gap:1em;align-items:center;flex-wrap:wrap}
.sheet{display:flex;flex-wrap:wrap;gap:8px} .tile{width:96px;font-size:11px;text-align:center;cursor:pointer}
.sprite{width:96px;height:96px;border:1px solid #ccc;background-repeat:no-repeat;display:inline-block}
.patches{display:flex;flex-wrap:wrap;gap:10px}
.patch{font-size:12px;text-align:center;width:150px} #channel{border:1px solid #ddd;padding:.8em;margin:1em 0}
.row{display:flex;gap:1.5em;flex-wrap:wrap;align-items:flex-start}"""


def _page(title: str, body: str, depth: int, script: str = "") -> str:
    home = "../" * depth + "index.html"
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><nav><a href='{home}'>microscope</a></nav>"
            f"<h1>{html.escape(title)}</h1>{body}{script}</body></html>")


_SCRIPT = r"""<script>
const D = JSON.parse(document.getElementById('data').textContent);
// Every text from the data (file names, layer names) is escaped before it meets innerHTML.
const ESCAPES = {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;'};
function esc(text) { return String(text).replace(/[&<>"'`]/g, ch => ESCAPES[ch]); }
function int(v) { const n = Number(v); return Number.isFinite(n) ? Math.trunc(n) : 0; }
function sprite(where) {
  const url = encodeURI(String(where[0])).replace(/'/g, '%27');  // safe inside url('...') and the attribute
  return `<span class="sprite" style="background-image:url('${esc(url)}');` +
         `background-position:-${int(where[1])}px -${int(where[2])}px"></span>`;
}
function fmt(v) {
  v = Number(v);
  if (!Number.isFinite(v)) return '?';
  return Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : v.toPrecision(3);
}
function order() {
  const key = document.getElementById('sort').value;
  const list = D.channels.slice();
  if (key !== 'channel') list.sort((a, b) => b[key] - a[key]);
  return list;
}
function sheet() {
  const html = order().map(c => {
    const pic = c.vis || (c.patches[0] && c.patches[0].sprite);
    return `<div class="tile" data-channel="${int(c.channel)}" onclick="location.hash='${int(c.channel)}'">` +
           (pic ? sprite(pic) : '<span class="sprite"></span>') +
           `<br>#${int(c.channel)} max ${fmt(c.max)}</div>`;
  }).join('');
  document.getElementById('sheet').innerHTML = html;  // built only of int(), fmt() and esc() values
}
function show() {
  const n = parseInt(location.hash.slice(1), 10);
  const box = document.getElementById('channel');
  if (isNaN(n) || !D.channels[n]) { box.hidden = true; return; }
  const c = D.channels[n], list = order(), at = list.findIndex(x => x.channel === n);
  const prev = list[(at - 1 + list.length) % list.length].channel, next = list[(at + 1) % list.length].channel;
  box.hidden = false;
  box.innerHTML = `<nav><a href="#${int(prev)}" id="prev">&larr; previous</a><b>${esc(D.layer)} channel ${n}</b>` +
    `<a href="#${int(next)}" id="next">next &rarr;</a></nav>` +
    `<p>mean ${fmt(c.mean)}, std ${fmt(c.std)}, max ${fmt(c.max)}, above zero ${(100 * c.positive).toFixed(1)}%, ` +
    `selectivity ${fmt(c.selectivity)} (max - mean) / std</p><div class="row">` +
    (c.vis ? `<div class="patch"><b>optimised to excite it</b><br>${sprite(c.vis)}</div>` : '') +
    `<div><b>top dataset patches</b> (receptive field clipped to the image; heat = this channel)` +
    `<div class="patches">` + c.patches.map(p =>
      `<div class="patch" data-rank="${int(p.rank)}">${sprite(p.sprite)}<br>#${int(p.rank) + 1}: ${fmt(p.value)} ` +
      `at (${int(p.y)}, ${int(p.x)})<br>` +
      (p.uri ? `<a href="${esc(p.uri)}">${esc(p.name)}</a>` : `<span class="name">${esc(p.name)}</span>`) +
      `</div>`).join('') + `</div></div></div>`;
  document.title = `${D.layer} channel ${n}`;
}
document.getElementById('sort').addEventListener('change', () => { sheet(); show(); });
document.getElementById('jump').addEventListener('submit', e => {
  e.preventDefault(); location.hash = document.getElementById('to').value; });
window.addEventListener('hashchange', show);
sheet(); show();
</script>"""


def read_patches(layer_folder: str | Path, channel: int) -> list[Image.Image]:
    """The top patches of ``channel`` from a built site's layer folder (cut from its sprites), best first."""
    folder = Path(layer_folder)
    page = (folder / "index.html").read_text()
    start = page.index("id='data'>") + len("id='data'>")
    data = json.loads(page[start:page.index("</script>", start)].replace("<\\/", "</"))
    if not 0 <= channel < len(data["channels"]):
        return []
    tiles = []
    for patch in data["channels"][channel]["patches"]:
        name, left, top = patch["sprite"]
        with Image.open(folder / Path(name).name) as sprite:
            tiles.append(sprite.convert("RGB").crop((left, top, left + PATCH, top + PATCH)))
    return tiles


def _layer_page(name: str, data: dict[str, Any]) -> str:
    rf = data["rf"]
    untrained = data["weights"].startswith("untrained")
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    body = (f"<p><span class='{'warn' if untrained else ''}'>{html.escape(data['weights'])}</span>; "
            f"{html.escape(data['type'])} {html.escape('x'.join(map(str, data['shape'])))}, receptive field "
            f"{int(rf[0]) if rf else 'global'} px. Click a channel, or use #N in the address.</p>"
            "<nav><label>sort by <select id='sort'><option value='channel'>channel</option>"
            "<option value='mean'>mean</option><option value='max'>maximum</option>"
            "<option value='selectivity'>selectivity</option></select></label>"
            f"<form id='jump'>channel <input id='to' type='number' min='0' max='{len(data['channels']) - 1}' "
            "size='5'> <button>go</button></form></nav>"
            "<div id='channel' hidden></div><div id='sheet' class='sheet'></div>"
            f"<script type='application/json' id='data'>{payload}</script>")
    return _page(f"{name}: {len(data['channels'])} channels", body, 1, _SCRIPT)
