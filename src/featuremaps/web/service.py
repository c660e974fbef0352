"""What the explorer computes, with the library's own functions; the routes only call these.

Every picture goes back as a PNG data URL. Images are referred to by an id the server gave
(an upload) or by ``sample:NAME``; models by a name from the allowed list. Nothing the client
sends is used as a path.
"""

from __future__ import annotations

import base64
import io
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from featuremaps.conv import ConvLayer
from featuremaps.conv.filters import bank_depth, bank_is_sizeable, bank_names
from featuremaps.conv.geometry import output_size_formula
from featuremaps.errors import FeatureMapsError, ImageError, SettingsError
from featuremaps.features import catalogue_for, find_layer
from featuremaps.features.catalogue import LayerInfo
from featuremaps.features.info import model_info
from featuremaps.illustrate import ConvScene, image_patch, random_grid
from featuremaps.illustrate.scene import SceneKind
from featuremaps.images import MAX_PIXELS, image_size, load_image, sample_path, samples
from featuremaps.models import available_models, load_model
from featuremaps.models.skeleton import load_skeleton, parameter_count
from featuremaps.render.drawing import apply_colormap, to_pil
from featuremaps.render.overlay import rank_maps, render_overlay
from featuremaps.render.show import ImageMaps, image_maps
from featuremaps.web.limits import LOOPBACK_HOSTS, LRUCache
from featuremaps.web.schemas import (
    CONV_LIMITS,
    ConfigResponse,
    ConvMap,
    ConvRequest,
    ConvResponse,
    LayerRow,
    LineageNodeOut,
    LineageRequest,
    LineageResponse,
    MapsRequest,
    MapsResponse,
    MapTile,
    OverlayRequest,
    OverlayResponse,
    Prediction,
    PredictRequest,
    PredictResponse,
    SceneRequest,
    SceneResponse,
    Segment,
    SegmentRequest,
    SegmentResponse,
    Uploaded,
    VisualizeRequest,
    VisualizeResponse,
)

__all__ = ["Explorer", "ExplorerSettings"]

MAX_SIDE = 512
"""Images are shrunk so their longer side is at most this many pixels for the playground."""
MODEL_CHOICES = ("builtin:imagenet", "builtin:objects", "builtin:shapes", "tinyresnet", "tinyvgg", "lenet5", "resnet18", "resnet50", "vgg16", "mobilenet_v3_small",
                 "efficientnet_b0", "convnext_tiny", "densenet121", "googlenet")


@dataclass
class ExplorerSettings:
    """Server settings; ``models`` adds names (a ``--model``) and ``checkpoint`` a file the server may load."""

    model: str | None = None
    checkpoint: str | None = None
    store: str | None = None
    max_upload_bytes: int = 20 * 1024 * 1024
    max_json_bytes: int = 64 * 1024
    max_pixels: int = MAX_PIXELS
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    concurrency: int = 2
    queue: int = 8
    image_cache: int = 64
    model_cache: int = 4
    max_parameters: int = 150_000_000
    extra_models: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, low in (("concurrency", 1), ("queue", 0), ("max_upload_bytes", 1), ("max_json_bytes", 1024),
                          ("max_pixels", 1), ("image_cache", 1), ("model_cache", 1), ("max_parameters", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SettingsError(f"{name} must be an integer >= {low}; got {value!r}")
        if not self.allowed_hosts:
            raise SettingsError("allowed_hosts must name at least one host (or '*' for any)")


def _playground_layer(channels: int, request: ConvRequest | SceneRequest) -> ConvLayer:
    """The playground's layer (also the player's): depth only for banks that take one, kernel size only for
    banks that can be sized, so a fixed bank's own count and size are not contradicted."""
    return ConvLayer(
        channels, request.filters,
        depth=request.depth if bank_depth(request.filters) is None else None,
        kernel_size=request.kernel_size if bank_is_sizeable(request.filters) else None,
        stride=request.stride, padding=request.padding, padding_mode=request.padding_mode,
        dilation=request.dilation, seed=request.seed, transposed=request.transposed,
        output_padding=request.output_padding,
    )


def png_url(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=False, compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


TILE_SIDE = 256
"""Longest side of a map tile sent to the page (tiles are shown at about 110 pixels)."""


def map_tile(values: np.ndarray, cmap: str = "viridis", scale: int = 1) -> str:
    """One map as a coloured PNG data URL: shrunk (area average) to at most TILE_SIDE pixels,
    colours stretched over its 0.5-99.5 percentiles."""
    height, width = values.shape
    factor = -(-max(height, width) // TILE_SIDE)
    if factor > 1:
        tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None]
        values = F.avg_pool2d(tensor, factor, ceil_mode=True)[0, 0].numpy()
    low, high = np.percentile(values, [0.5, 99.5]) if values.size > 16 else (values.min(), values.max())
    picture = Image.fromarray(apply_colormap(values, float(low), float(high), cmap))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    return png_url(picture)


class Explorer:
    """State of one app: bounded caches of images, models and results."""

    def __init__(self, settings: ExplorerSettings) -> None:
        self.settings = settings
        self.images: LRUCache[str, torch.Tensor] = LRUCache(settings.image_cache)
        self.original_sizes: LRUCache[str, tuple[int, int]] = LRUCache(settings.image_cache)
        self.models: LRUCache[str, torch.nn.Module] = LRUCache(settings.model_cache)
        self.skeletons: LRUCache[str, torch.nn.Module] = LRUCache(64)  # architectures only: no memory
        names = {row["name"] for row in available_models()}
        self.allowed = names | {f"builtin:{n}" for n in names} | set(settings.extra_models)
        self.choices = [m for m in MODEL_CHOICES if m in self.allowed or m.removeprefix("builtin:") in names]
        if settings.model:
            self.allowed.add(settings.model)
            self.choices.insert(0, settings.model)
        if settings.checkpoint:
            self.allowed.add("checkpoint")
            self.choices.insert(0, "checkpoint")
        self.microscope: tuple[Path, str] | None = None

    def attach_microscope(self, site: Path, model: str) -> None:
        """The microscope site built from ``--store`` (of ``model``): its patches join the channel panel."""
        self.microscope = (site, model)

    # --- images ----------------------------------------------------------------------
    def add_image(self, data: bytes) -> Uploaded:
        """Keep an upload, shrunk to :data:`MAX_SIDE` while still 8-bit (the full-size float image is never made)."""
        width, height = image_size(data, max_pixels=self.settings.max_pixels)
        tensor = load_image(data, mode="rgb", max_pixels=self.settings.max_pixels, max_side=MAX_SIDE)
        image_id = secrets.token_hex(8)
        self.images.put(image_id, tensor)
        self.original_sizes.put(image_id, (width, height))
        return Uploaded(id=image_id, width=width, height=height, computed_width=int(tensor.shape[2]),
                        computed_height=int(tensor.shape[1]))

    def shrink_note(self, image_id: str) -> str | None:
        """``shown and computed at 341x512: shrunk from 683x1024 (...)`` when the explorer shrank the image."""
        tensor = self.image(image_id)
        original = self.original_sizes.get(image_id)
        if original is None and image_id.startswith("sample:"):
            original = image_size(sample_path(image_id))
        if original is None or original == (int(tensor.shape[2]), int(tensor.shape[1])):
            return None
        return (f"computed at {tensor.shape[2]}x{tensor.shape[1]}: shrunk from {original[0]}x{original[1]} (the "
                f"explorer works on images whose longer side is at most {MAX_SIDE} px)")

    def image(self, image_id: str) -> torch.Tensor:
        if image_id.startswith("sample:"):
            names = [s.name for s in samples()]
            if image_id.removeprefix("sample:") not in names:
                raise ImageError(image_id, f"no such sample; available: {', '.join(names)}")
            return self.images.get_or_create(image_id, lambda: load_image(image_id, mode="rgb", max_side=MAX_SIDE))
        tensor = self.images.get(image_id)
        if tensor is None:
            raise SettingsError(f"unknown image id {image_id!r}; upload the image again (the server keeps the "
                                f"{self.settings.image_cache} most recent)")
        return tensor

    def image_png(self, image_id: str) -> bytes:
        buffer = io.BytesIO()
        to_pil(self.image(image_id)).save(buffer, format="PNG")
        return buffer.getvalue()

    # --- models ----------------------------------------------------------------------
    def _target(self, name: str) -> str:
        if name not in self.allowed:
            raise SettingsError(f"unknown model {name!r}; choose one of {', '.join(self.choices)} (or another "
                                "torchvision name)")
        return self.settings.checkpoint if name == "checkpoint" and self.settings.checkpoint else name

    def skeleton(self, name: str) -> torch.nn.Module:
        """The model's architecture without weights (meta tensors): shapes and counts at no memory cost."""
        target = self._target(name)
        return self.skeletons.get_or_create(name, lambda: load_skeleton(target))

    def model(self, name: str) -> torch.nn.Module:
        """The model with its weights, built once per name (at most ``max_parameters`` values, checked first)."""
        target = self._target(name)

        def build() -> torch.nn.Module:
            count = parameter_count(self.skeleton(name))
            if count > self.settings.max_parameters:
                raise SettingsError(f"{name} has {count:,} parameters; the explorer builds models of up to "
                                    f"{self.settings.max_parameters:,} (start it with --max-parameters to allow "
                                    "more; its layers are listed without building it)")
            return load_model(target)

        return self.models.get_or_create(name, build)

    def model_list(self) -> ConfigResponse:
        return ConfigResponse(choices=self.choices, default=self.choices[0] if self.choices else None,
                              recognition="checkpoint" if self.settings.checkpoint else "builtin:imagenet",
                              banks=bank_names(),
                              bank_depths={name: bank_depth(name) for name in bank_names()},
                              sizeable_banks=[name for name in bank_names() if bank_is_sizeable(name)], samples=[s.name for s in samples()], store=bool(self.settings.store))

    def layers(self, name: str) -> list[LayerRow]:
        """The spatial layers of a model, from its skeleton: no weights are made, whatever the model's size
        (a model whose forward pass needs real values, a detector, is traced with its weights)."""
        model = self.skeleton(name)
        catalogue = catalogue_for(model, model_info(model).input_size)
        if catalogue.stopped_at is not None and catalogue.stopped_at[1].startswith("NotImplementedError"):
            model = self.model(name)
            catalogue = catalogue_for(model, model_info(model).input_size)
        return [LayerRow.model_validate(layer.to_dict()) for layer in catalogue if layer.is_spatial]

    # --- the convolution playground ------------------------------------------------
    def conv(self, request: ConvRequest) -> ConvResponse:
        """Maps of the playground's layer; refused before computing when over :data:`CONV_LIMITS`."""
        image = self.image(request.image)
        layer = _playground_layer(int(image.shape[0]), request)
        if layer.depth > CONV_LIMITS.max_filters:
            raise SettingsError(f"filters {request.filters!r} make {layer.depth} maps; the explorer shows at most "
                                f"{CONV_LIMITS.max_filters}")
        layer.cost(tuple(image.shape)).check(max_output_values=CONV_LIMITS.max_output_values,
                                             max_multiply_adds=CONV_LIMITS.max_multiply_adds)
        with torch.inference_mode():
            maps = layer(image)
        size = (int(image.shape[1]), int(image.shape[2]))
        return ConvResponse(
            shrink=self.shrink_note(request.image), input_shape=list(image.shape), output_shape=list(maps.shape),
            formula=list(output_size_formula(layer.geometry, size)),
            maps=[ConvMap(index=i, name=name, min=float(m.min()), max=float(m.max()), png=map_tile(m.numpy()))
                  for i, (name, m) in enumerate(zip(layer.filter_names, maps))],
        )

    def scene(self, request: SceneRequest) -> SceneResponse:
        """The player's scene: the playground's bank and settings on a small patch of the image (or a grid)."""
        kind: SceneKind = "grid" if request.image is None else "image"
        if request.image is not None:
            x = image_patch(self.image(request.image), request.height, request.width, channels=3)
        else:
            x = random_grid(request.height, request.width, request.channels, seed=0)
        layer = _playground_layer(int(x.shape[0]), request)
        if layer.depth > 16:
            raise SettingsError(f"filters {request.filters!r} make {layer.depth} maps; the player shows at most 16")
        scene = ConvScene.from_layer(layer, x, kind=kind)
        return SceneResponse.model_validate(scene.to_dict(include_steps=request.include_steps))

    # --- models' maps ---------------------------------------------------------------
    def layer_maps(self, image_id: str, model_name: str, layer: str) -> tuple[ImageMaps, LayerInfo]:
        """The maps of one layer of a model for an image of the explorer (the feature core's ``image_maps``)."""
        seen = image_maps(self.model(model_name), to_pil(self.image(image_id)), [layer])
        entry = seen.layers[layer] if layer in seen.layers else next(iter(seen.layers.values()))
        return seen, entry

    def maps(self, request: MapsRequest) -> MapsResponse:
        model = self.model(request.model)
        seen, entry = self.layer_maps(request.image, request.model, request.layer)
        tensor = seen.spatial(entry.name).float()
        order = rank_maps(tensor)[:request.max_maps]
        scale = max(1, 64 // max(tensor.shape[1:]))
        return MapsResponse(
            layer=LayerRow.model_validate(entry.to_dict()), input=png_url(to_pil(seen.display)),
            input_size=[int(seen.display.shape[1]), int(seen.display.shape[2])],
            maps=[MapTile(channel=c, min=float(tensor[c].min()), max=float(tensor[c].max()),
                          png=map_tile(tensor[c].numpy(), scale=scale)) for c in order],
            channels=int(tensor.shape[0]), weights=model_info(model).weights_label,
        )

    def overlay(self, request: OverlayRequest) -> OverlayResponse:
        seen, entry = self.layer_maps(request.image, request.model, request.layer)
        tensor = seen.spatial(entry.name).float()
        channel = request.channel
        if channel >= tensor.shape[0]:
            raise SettingsError(f"channel must be from 0 to {tensor.shape[0] - 1} for {entry.name}; got {channel}")
        return OverlayResponse(png=png_url(render_overlay(seen.display, tensor[channel], layer=entry,
                                                         title=f"{entry.name} channel {channel}")),
                               map=map_tile(tensor[channel].numpy(), scale=max(1, 256 // max(tensor.shape[1:]))),
                               map_size=[int(tensor.shape[1]), int(tensor.shape[2])])

    def lineage(self, request: LineageRequest) -> LineageResponse:
        """The map's strongest input maps and their shares (and theirs, with more levels)."""
        from featuremaps.analysis.lineage import lineage
        from featuremaps.render.lineage import receptive_crop

        model = self.model(request.model)
        # one layer by its exact name (never a pattern, a type or a unit spec such as conv2_2:1)
        find_layer(catalogue_for(model, model_info(model).input_size), request.layer, model_name=model_info(model).name)
        result = lineage(model, to_pil(self.image(request.image)), f"{request.layer}:{request.channel}",
                         levels=request.levels, top=request.top)
        parents = {edge.child: edge for edge in result.edges}
        nodes = []
        for node in result.nodes:
            values = result.maps.get(node.id)
            edge = parents.get(node.id)
            tile = map_tile(values, scale=max(1, 64 // max(values.shape))) if values is not None else ""
            nodes.append(LineageNodeOut(
                id=node.id, level=node.level, layer=node.layer, channel=node.channel, value=node.value,
                share=edge.share if edge else None, parent=edge.parent if edge else None, map=tile,
                crop=png_url(receptive_crop(result.display, node)) if result.display is not None else "",
                exact=node.exact))
        root = result.root
        return LineageResponse(model=result.model, weights=result.weights, method=result.method, exact=result.exact,
                               approximate_ops=result.approximate_ops, skip=root.skip, branch=root.branch,
                               bias=root.bias, nodes=nodes)

    def visualize(self, request: VisualizeRequest) -> VisualizeResponse:
        """What a channel detects: an image optimised to excite it, and its top dataset patches."""
        from featuremaps.optvis import channel, visualize

        model = self.model(request.model)
        size = request.size or self._visualize_side(model)
        if size * size * request.steps > 224 * 224 * 128:  # the work one request may ask for
            raise SettingsError(f"size {size} with {request.steps} steps is more work than the explorer does at once "
                                f"(at most 224 px with 128 steps); use fewer steps")
        found = visualize(model, channel(request.layer, request.channel), steps=request.steps, size=size,
                          batch_size=1)
        patches, page = self._microscope_patches(request)
        return VisualizeResponse(model=found.model, weights=found.weights, label=found.objectives[0].label,
                                 image=png_url(to_pil(found.images[0])), start=float(found.history[0, 0]),
                                 value=float(found.values[0]), patches=patches, microscope=page)

    @staticmethod
    def _visualize_side(model: torch.nn.Module) -> int:
        """96 px where the model runs at that size; else its own input side (a ViT takes only 224)."""
        info = model_info(model)
        small = (info.input_size[0], 96, 96)
        if catalogue_for(model, small).stopped_at is None:
            return 96
        side = max(info.input_size[1:])
        if side > 256:
            raise SettingsError(f"{info.name} runs only on {side}x{side} images; the explorer optimises images of at "
                                "most 256 px (use featuremaps visualize --size on the command line)")
        return side

    def _microscope_patches(self, request: VisualizeRequest) -> tuple[list[str], str | None]:
        if self.microscope is None:
            return [], None
        site, model = self.microscope
        if model != request.model:
            return [], None
        from featuremaps.batch.microscope import read_patches, site_layers

        folder = site_layers(site).get(request.layer)  # the site's own table: the request names no path
        if folder is None or not folder.is_dir():
            return [], None
        tiles = read_patches(folder, request.channel)
        return [png_url(tile) for tile in tiles], f"/microscope/{quote(folder.name)}/index.html#{request.channel}"

    # --- recognition and segmentation ------------------------------------------------
    def predict(self, request: PredictRequest) -> PredictResponse:
        from featuremaps.recognize.predict import recognize

        model = self.model(request.model or self.model_list().recognition)
        found = recognize(model, [to_pil(self.image(request.image))], top_k=request.top_k)[0]
        result = found.prediction
        info = model_info(model)
        return PredictResponse(predictions=[Prediction(label=lab, probability=p) for lab, p in result.labels],
                               cam=png_url(found.overlay()), cam_layer=found.cam_layer or "", model=info.name,
                               weights=info.weights_label,
                               classes=list(info.class_names or []), familiar=result.familiar, note=result.note)

    def segment(self, request: SegmentRequest) -> SegmentResponse:
        from featuremaps.render.segmentation import render_segmentation
        from featuremaps.segment.run import segment_image

        picture = to_pil(self.image(request.image))
        if request.method == "head":
            model = self.models.get_or_create("builtin:shapes-seg", lambda: load_model("builtin:shapes-seg"))
            result = segment_image(model, picture)
        else:
            result = segment_image(self.model(request.model or "builtin:shapes"), picture, clusters=request.clusters)
        background = 0 if result.method == "head" else None
        counts = np.bincount(result.mask.ravel(), minlength=len(result.names))
        title = f"{result.model} ({result.weights})" + (f". {result.note}" if result.note else "")
        return SegmentResponse(
            png=png_url(render_segmentation(result.image, result.mask, result.names, background=background,
                                            title=title, panel_side=250)),
            segments=[Segment(index=i, name=result.names[i], pixels=int(c)) for i, c in enumerate(counts) if c],
            layers=result.layers, familiar=result.familiar, note=result.note)


def error_status(error: Exception) -> int:
    """400 for featuremaps' own errors (bad input or settings); anything else is a bug: 500."""
    return 400 if isinstance(error, FeatureMapsError) else 500
