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

import html
import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from featuremaps.batch.store import Store
from featuremaps.drawing import apply_colormap, font, to_pil
from featuremaps.errors import FeatureMapsError, ImageError, SettingsError
from featuremaps.features import FeatureExtractor, sample_maps
from featuremaps.inputs import ModelInput

__all__ = ["PATCH", "SPRITE_CHANNELS", "build_microscope", "read_patches"]

logger = logging.getLogger(__name__)
PATCH = 96
"""Side of one patch (and one visualisation) in the sprites, in pixels."""
SPRITE_CHANNELS = 64
"""Channels per sprite image."""
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


def _folder(layer: str) -> str:
    return layer.replace(":", "_").replace("/", "_")


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

    def save(self, folder: Path) -> list[Path]:
        paths = []
        for sheet, image in sorted(self.sheets.items()):
            path = folder / f"{self.prefix}-{sheet}.jpg"
            image.save(path, quality=88)
            paths.append(path)
        return paths


def _load(manifest_config: dict[str, Any]) -> torch.nn.Module | None:
    from featuremaps.models import load_model

    try:
        return load_model(manifest_config["model"], weights=manifest_config.get("weights"))
    except (FeatureMapsError, OSError, ImportError) as error:
        logger.warning("no heat maps or visualisations: model %s cannot be loaded here (%s)",
                       manifest_config["model"], error)
        return None


def _maps_per_image(model: torch.nn.Module | None, layers: Sequence[str],
                    model_input: ModelInput) -> Callable[[str], tuple[Image.Image, dict[str, torch.Tensor] | None]]:
    """A function: path -> (the model's view of the image, its maps ``{layer: (C, h, w)}`` or None)."""
    extractor = FeatureExtractor(model, list(layers)) if model is not None else None

    def read(path: str) -> tuple[Image.Image, dict[str, torch.Tensor] | None]:
        prepared = model_input.prepare(path)  # uint8 (C, H, W): what the model sees
        view = to_pil(prepared.float().div(255)).convert("RGB")
        if extractor is None:
            return view, None
        maps = extractor(model_input.normalise(prepared)[None])
        return view, {name: tensor[0].float() for name, tensor in maps.items()}

    return read


def build_microscope(store_dir: str | Path, out_dir: str | Path, *, visualize: bool = False, vis_steps: int = 128,
                     vis_size: int | None = None, progress: Progress | None = None) -> Path:
    """Write the site for a finished store; return ``out_dir/index.html``.

    Args:
        visualize: also optimise one image per channel (slow on a CPU: ``vis_steps`` steps per 16 channels).
        vis_steps, vis_size: steps and side of the visualisations (default side: the model's input, at most 128).
        progress: called with ``(stage, done, total)``.
    """
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
    k = int(manifest.config["top_k"])
    layers = {layer["name"]: layer for layer in manifest.layers}
    sprites = {name: _Sprites(layer["channels"], k, "patches") for name, layer in layers.items()}
    peaks: dict[tuple[str, int], float] = defaultdict(float)
    by_image: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in top:
        by_image[entry["path"]].append(entry)
        peaks[(entry["layer"], entry["channel"])] = max(peaks[(entry["layer"], entry["channel"])], entry["value"])
    model = _load(manifest.config)
    read = _maps_per_image(model, list(layers), model_input)
    geometries = {name: _Geometry.of(layer) for name, layer in layers.items()}
    unreadable: list[str] = []
    done = 0
    for path, entries in by_image.items():
        try:
            view, maps = read(path)
        except (ImageError, OSError) as error:
            unreadable.append(f"{path}: {getattr(error, 'reason', None) or error}")
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
        folder = out / _folder(name)
        folder.mkdir(exist_ok=True)
        sprites[name].save(folder)
        vis_sprite = visual.get(name)
        if vis_sprite is not None:
            vis_sprite.save(folder)
        data = _layer_data(name, layer, top, stats, sprites[name], vis_sprite, manifest.weights_label, unreadable)
        (folder / "index.html").write_text(_layer_page(name, data))
        rows.append(f"<tr><td><a href='{_folder(name)}/index.html'>{html.escape(name)}</a></td>"
                    f"<td>{html.escape(layer['type'])}</td><td>{'x'.join(map(str, layer['output_shape']))}</td>"
                    f"<td>{int(layer['jump'][0]) if layer['jump'] else '-'}</td>"
                    f"<td>{int(layer['receptive_field'][0]) if layer['receptive_field'] else '-'}</td>"
                    f"<td>{'yes' if vis_sprite is not None else 'no'}</td></tr>")
    summary = manifest.summary
    untrained = manifest.weights_label.startswith("untrained")
    body = (f"<p>Model {html.escape(str(manifest.config['model']))} "
            f"(<b class='{'warn' if untrained else ''}'>{html.escape(manifest.weights_label)}</b>), "
            f"{manifest.images} images ({summary.get('readable', '?')} readable), top {k} per channel.</p>"
            "<table><tr><th>layer</th><th>type</th><th>maps</th><th>stride</th><th>receptive field</th>"
            "<th>visualisations</th></tr>" + "".join(rows) + "</table>")
    index = out / "index.html"
    index.write_text(_page(f"featuremaps microscope{' (untrained: random weights)' if untrained else ''}", body, 0))
    return index


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
                sprite: _Sprites, vis: _Sprites | None, weights: str, unreadable: list[str]) -> dict[str, Any]:
    per_channel: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in top:
        if entry["layer"] == name:
            per_channel[entry["channel"]].append(entry)
    layer_stats = {s["channel"]: s for s in stats if s["layer"] == name}
    channels = []
    for c in range(layer["channels"]):
        s = layer_stats.get(c, {})
        mean, std, peak = float(s.get("mean", 0)), float(s.get("std", 0)), float(s.get("max", 0))
        patches = [{"rank": e["rank"], "value": e["value"], "y": e["y"], "x": e["x"], "name": Path(e["path"]).name,
                    "uri": Path(e["path"]).resolve().as_uri(), "sprite": sprite.where(c, e["rank"])}
                   for e in sorted(per_channel.get(c, []), key=lambda e: e["rank"])]
        channels.append({"channel": c, "mean": mean, "std": std, "max": peak,
                         "positive": float(s.get("fraction_positive", 0)),
                         "selectivity": (peak - mean) / std if std > 0 else 0.0,
                         "patches": patches, "vis": vis.where(c, 0) if vis is not None else None})
    return {"layer": name, "type": layer["type"], "shape": layer["output_shape"],
            "rf": layer["receptive_field"], "weights": weights, "patch": PATCH, "channels": channels,
            "unreadable": len(unreadable)}


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
function sprite(where) {
  return `<span class="sprite" style="background-image:url('${where[0]}');` +
         `background-position:-${where[1]}px -${where[2]}px"></span>`;
}
function fmt(v) { return Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : v.toPrecision(3); }
function order() {
  const key = document.getElementById('sort').value;
  const list = D.channels.slice();
  if (key !== 'channel') list.sort((a, b) => b[key] - a[key]);
  return list;
}
function sheet() {
  const html = order().map(c => {
    const pic = c.vis || (c.patches[0] && c.patches[0].sprite);
    return `<div class="tile" data-channel="${c.channel}" onclick="location.hash='${c.channel}'">` +
           (pic ? sprite(pic) : '<span class="sprite"></span>') +
           `<br>#${c.channel} max ${fmt(c.max)}</div>`;
  }).join('');
  document.getElementById('sheet').innerHTML = html;
}
function show() {
  const n = parseInt(location.hash.slice(1), 10);
  const box = document.getElementById('channel');
  if (isNaN(n) || !D.channels[n]) { box.hidden = true; return; }
  const c = D.channels[n], list = order(), at = list.findIndex(x => x.channel === n);
  const prev = list[(at - 1 + list.length) % list.length].channel, next = list[(at + 1) % list.length].channel;
  box.hidden = false;
  box.innerHTML = `<nav><a href="#${prev}" id="prev">&larr; previous</a><b>${D.layer} channel ${n}</b>` +
    `<a href="#${next}" id="next">next &rarr;</a></nav>` +
    `<p>mean ${fmt(c.mean)}, std ${fmt(c.std)}, max ${fmt(c.max)}, above zero ${(100 * c.positive).toFixed(1)}%, ` +
    `selectivity ${fmt(c.selectivity)} (max - mean) / std</p><div class="row">` +
    (c.vis ? `<div class="patch"><b>optimised to excite it</b><br>${sprite(c.vis)}</div>` : '') +
    `<div><b>top dataset patches</b> (receptive field clipped to the image; heat = this channel)` +
    `<div class="patches">` + c.patches.map(p =>
      `<div class="patch" data-rank="${p.rank}">${sprite(p.sprite)}<br>#${p.rank + 1}: ${fmt(p.value)} ` +
      `at (${p.y}, ${p.x})<br><a href="${p.uri}">${p.name}</a></div>`).join('') + `</div></div></div>`;
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
            f"{data['type']} {'x'.join(map(str, data['shape']))}, receptive field "
            f"{int(rf[0]) if rf else 'global'} px. Click a channel, or use #N in the address.</p>"
            "<nav><label>sort by <select id='sort'><option value='channel'>channel</option>"
            "<option value='mean'>mean</option><option value='max'>maximum</option>"
            "<option value='selectivity'>selectivity</option></select></label>"
            f"<form id='jump'>channel <input id='to' type='number' min='0' max='{len(data['channels']) - 1}' "
            "size='5'> <button>go</button></form></nav>"
            "<div id='channel' hidden></div><div id='sheet' class='sheet'></div>"
            f"<script type='application/json' id='data'>{payload}</script>")
    return _page(f"{name}: {len(data['channels'])} channels", body, 1, _SCRIPT)
