"""What the explorer's API accepts and answers: typed requests with their bounds, checked once
here, and typed responses (the OpenAPI document at ``/openapi.json`` describes both).

Every string has a length limit and, where it names something, a pattern: an image is a
server id or ``sample:NAME``, filters are bank names. No request field is ever used as a path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CONV_LIMITS",
    "ConfigResponse",
    "ConvLimits",
    "ConvMap",
    "ConvRequest",
    "ConvResponse",
    "Health",
    "ImageRef",
    "LayerRow",
    "MapTile",
    "MapsRequest",
    "MapsResponse",
    "OverlayRequest",
    "OverlayResponse",
    "PredictRequest",
    "PredictResponse",
    "Prediction",
    "SceneRequest",
    "SceneResponse",
    "Segment",
    "SegmentRequest",
    "SegmentResponse",
    "Uploaded",
    "describe_invalid",
]

ImageRef = Annotated[str, Field(min_length=1, max_length=48, pattern=r"^(sample:[a-z0-9_]{1,32}|[0-9a-f]{16})$",
                                description="An id from POST /api/images, or sample:NAME.")]
BankNames = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[a-z0-9_]+(,[a-z0-9_]+)*$",
                                 description="Filter bank names, comma separated (GET /api/config lists them).")]
ModelName = Annotated[str, Field(min_length=1, max_length=100, description="A model from GET /api/config.")]
LayerName = Annotated[str, Field(min_length=1, max_length=200, description="A layer name from the layers route.")]
PaddingModeName = Literal["zeros", "reflect", "replicate", "circular"]


class ConvLimits(BaseModel):
    """The work one playground request may ask for; refused before computing when over."""

    model_config = ConfigDict(frozen=True)

    max_filters: int = 64
    max_output_values: int = 64 * 512 * 512  # 64 MiB of float32 maps
    max_multiply_adds: int = 8_000_000_000  # about 0.1-0.3 s on two CPU cores


CONV_LIMITS = ConvLimits()


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConvRequest(_Request):
    image: ImageRef = "sample:cat"
    filters: BankNames = "sobel"
    depth: int | None = Field(None, ge=1, le=CONV_LIMITS.max_filters,
                              description="Filters of a random, random_int or gabor bank (ignored for others).")
    kernel_size: int = Field(3, ge=1, le=15, description="Kernel size of a sizeable bank.")
    stride: int = Field(1, ge=1, le=16)
    padding: Union[Annotated[int, Field(ge=0, le=32)], Literal["same", "valid"]] = Field(
        0, description="an integer from 0 to 32, 'same' or 'valid'")
    padding_mode: PaddingModeName = "zeros"
    dilation: int = Field(1, ge=1, le=8)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    transposed: bool = Field(False, description="A transposed convolution (stride - 1 zeros between pixels).")
    output_padding: int = Field(0, ge=0, le=15, description="Rows/columns added after a transposed output "
                                "(smaller than the stride or the dilation).")


class SceneRequest(_Request):
    """The step-by-step player: the playground's layer on a small input (a patch of an image or an integer grid)."""

    image: ImageRef | None = Field(None, description="Shrink this image to height x width (its RGB channels); "
                                   "without it, a seeded grid of integers 0..9 with `channels` channels.")
    filters: BankNames = "random_int"
    height: int = Field(7, ge=2, le=12)
    width: int = Field(7, ge=2, le=12)
    channels: int = Field(1, ge=1, le=3, description="Channels of the integer grid (an image has 3).")
    depth: int = Field(2, ge=1, le=16, description="Filters of a random, random_int or gabor bank.")
    kernel_size: int = Field(3, ge=1, le=5)
    stride: int = Field(1, ge=1, le=4)
    padding: int = Field(0, ge=0, le=3)
    padding_mode: PaddingModeName = "zeros"
    dilation: int = Field(1, ge=1, le=3)
    transposed: bool = False
    output_padding: int = Field(0, ge=0, le=3)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    include_steps: bool = Field(True, description="Also send every step's products and sums (the page computes "
                                "them itself from the padded input and the weights).")


class MapsRequest(_Request):
    image: ImageRef = "sample:cat"
    model: ModelName = "resnet18"
    layer: LayerName = "layer1"
    max_maps: int = Field(32, ge=1, le=256)


class OverlayRequest(_Request):
    image: ImageRef = "sample:cat"
    model: ModelName = "resnet18"
    layer: LayerName = "layer1"
    channel: int = Field(0, ge=0, le=65535)


class LineageRequest(_Request):
    image: ImageRef = "sample:cat"
    model: ModelName = "resnet18"
    layer: LayerName = "layer1"
    channel: int = Field(0, ge=0, le=65535)
    levels: int = Field(1, ge=1, le=3, description="Steps back from the map.")
    top: int = Field(6, ge=1, le=8, description="Strongest input maps kept per node.")


class VisualizeRequest(_Request):
    model: ModelName = "resnet18"
    layer: LayerName = "layer1"
    channel: int = Field(0, ge=0, le=65535)
    steps: int = Field(48, ge=1, le=128, description="Optimisation steps (the work is bounded by 128).")
    size: int | None = Field(None, ge=32, le=256, description="Side of the optimised image in pixels; default 96, "
                             "or the model's own input size when it runs only at that size (a ViT: 224).")


class PredictRequest(_Request):
    image: ImageRef = "sample:cat"
    model: ModelName | None = None
    top_k: int = Field(3, ge=1, le=10)


class SegmentRequest(_Request):
    image: ImageRef = "sample:cat"
    method: Literal["clusters", "head"] = "clusters"
    clusters: int = Field(4, ge=2, le=12)
    model: ModelName | None = None


# --- responses --------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    load: dict[str, dict[str, int]] = Field(description="Per kind of work (light: the playground, layers, "
                                                        "uploads; heavy: a model's forward or backward pass): "
                                                        "running, waiting, concurrency, queue.")


class ConfigResponse(BaseModel):
    choices: list[str] = Field(description="Models the explorer offers.")
    default: str | None
    recognition: str = Field(description="The classifier used for recognition.")
    banks: list[str]
    bank_depths: dict[str, int | None] = Field(description="Filters each bank gives; null: it takes a depth.")
    sizeable_banks: list[str] = Field(description="Banks that take a kernel size (the others are 3x3).")
    samples: list[str]
    store: bool = Field(description="True when a microscope is served under /microscope/.")


class Uploaded(BaseModel):
    id: str = Field(description="The image's id for the other routes.")
    width: int
    height: int
    computed_width: int = Field(description="The width the explorer computes with (longer side at most 512 px).")
    computed_height: int


class ConvMap(BaseModel):
    index: int
    name: str
    min: float
    max: float
    png: str = Field(description="A PNG data URL of the map.")


class ConvResponse(BaseModel):
    shrink: str | None = Field(None, description="Set when the image was shrunk for the explorer: the sizes.")
    input_shape: list[int]
    output_shape: list[int]
    formula: list[str]
    maps: list[ConvMap]


class SceneResponse(BaseModel):
    """The convolution scene as :meth:`featuremaps.illustrate.ConvScene.to_dict` writes it."""

    model_config = ConfigDict(extra="allow")

    version: int
    kind: str
    coordinates: str
    input: dict[str, Any]
    padding: dict[str, Any]
    padded: dict[str, Any]
    layer: dict[str, Any]
    output: dict[str, Any]
    formula: list[str]
    order: str
    steps: list[dict[str, Any]]


class LayerRow(BaseModel):
    """One layer of the catalogue (:meth:`featuremaps.LayerInfo.to_dict`)."""

    model_config = ConfigDict(populate_by_name=True)

    name: str
    type: str
    depth: int
    output_shape: list[int]
    stride: list[float] | None
    receptive_field: list[float] | None
    start: list[float] | None
    global_field: bool = Field(alias="global")
    merged: bool
    global_context: bool
    uneven: bool = False
    kernel_size: list[int] | None = None
    layer_stride: list[int] | None = None
    padding: Any = None
    dilation: list[int] | None = None
    groups: int | None = None
    parameters: int


class MapTile(BaseModel):
    channel: int
    min: float
    max: float
    png: str


class MapsResponse(BaseModel):
    layer: LayerRow
    input: str = Field(description="The model's input before normalisation, as a PNG data URL.")
    input_size: list[int]
    maps: list[MapTile]
    channels: int
    weights: str = Field(description="The model's weights, or 'untrained (random) weights'.")


class LineageNodeOut(BaseModel):
    id: int
    level: int
    layer: str
    channel: int
    value: float
    share: float | None = Field(None, description="Its part of all its parent's input maps' |contributions| "
                                                  "(signed); None for the map asked about.")
    parent: int | None = None
    map: str = Field(description="The node's map, as a PNG data URL.")
    crop: str = Field(description="The input its strongest unit sees (receptive field boxed), a PNG data URL.")
    exact: bool | None = None


class LineageResponse(BaseModel):
    model: str
    weights: str = Field(description="The model's weights, or 'untrained (random) weights'.")
    method: str
    exact: bool
    approximate_ops: list[str]
    skip: float | None = Field(None, description="Of the map's value: the part through a residual skip.")
    branch: float | None = None
    bias: float | None = None
    nodes: list[LineageNodeOut]


class VisualizeResponse(BaseModel):
    model: str
    weights: str = Field(description="The model's weights, or 'untrained (random) weights'.")
    label: str
    image: str = Field(description="The image optimised to excite the channel's mean, a PNG data URL.")
    start: float = Field(description="The channel's mean on the first step's image.")
    value: float = Field(description="The channel's mean on the final image.")
    patches: list[str] = Field(description="Top dataset patches from the store's microscope (PNG data URLs), "
                                           "when --store was given for this model and layer.")
    microscope: str | None = Field(None, description="The channel's page in the microscope, when there is one.")


class OverlayResponse(BaseModel):
    png: str
    map: str
    map_size: list[int]


class Prediction(BaseModel):
    label: str
    probability: float


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    cam: str
    cam_layer: str
    model: str
    weights: str = Field(description="The model's weights, or 'untrained (random) weights'.")
    classes: list[str]
    familiar: bool | None = Field(None, description="False: the image's maps are unlike the training data's, so "
                                                    "the label means little; None: the model has no statistics.")
    note: str = ""


class Segment(BaseModel):
    index: int
    name: str
    pixels: int


class SegmentResponse(BaseModel):
    png: str
    segments: list[Segment]
    layers: list[str]
    familiar: bool | None = Field(None, description="A trained head: False when the image is unlike its training "
                                  "scenes (its labels mean little); None when not known.")
    note: str = ""


def describe_invalid(errors: Sequence[Any]) -> str:
    """Pydantic's errors as one line per field: what is wrong, what is allowed, a short form of what was sent.

    A field that may take several forms (padding: a number or a word) is described once with
    all of its forms, instead of one message per form.
    """
    by_field: dict[str, list[dict[str, Any]]] = {}
    for item in errors:
        location = [str(part) for part in item.get("loc", ()) if part != "body"]
        by_field.setdefault(location[0] if location else "body", []).append(item)
    lines = []
    for name, items in by_field.items():
        if items[0].get("type") == "json_invalid":
            reason = (items[0].get("ctx") or {}).get("error", "")
            lines.append(f"the body is not valid JSON ({reason} at character {items[0].get('loc', ('', '?'))[-1]})")
            continue
        sent = repr(items[0].get("input"))
        sent = sent if len(sent) <= 60 else sent[:60] + "..."
        forms = {model.model_fields[name].description for model in _REQUESTS if name in model.model_fields} - {None}
        if len(items) > 1 and len(forms) == 1:
            lines.append(f"{name}: must be {forms.pop()}; got {sent}")
        else:
            lines.append(f"{name}: {'; '.join(str(i.get('msg', 'invalid')) for i in items)}; got {sent}")
    return "; ".join(lines)


_REQUESTS: tuple[type[BaseModel], ...] = (ConvRequest, SceneRequest, MapsRequest, OverlayRequest, PredictRequest,
                                          SegmentRequest)
