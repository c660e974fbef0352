"""``convolve``: one convolution layer on one image, as a result that shows itself (the API's ``featuremaps conv``)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from featuremaps.conv.geometry import output_size_formula
from featuremaps.conv.layer import ConvLayer, ConvStep
from featuremaps.images import ImageSource, load_image
from featuremaps.render.drawing import png_bytes, png_data_url
from featuremaps.render.grid import render_grid

__all__ = ["ConvResult", "convolve"]


@dataclass(frozen=True)
class ConvResult:
    """A layer, its input ``(C, H, W)`` and its maps ``(D, H', W')``; in Jupyter, the maps' grid and the formula."""

    layer: ConvLayer
    input: torch.Tensor
    maps: torch.Tensor
    source: str

    @property
    def formula(self) -> tuple[str, str]:
        """The output-size formula with the numbers, per axis."""
        return output_size_formula(self.layer.geometry, (int(self.input.shape[1]), int(self.input.shape[2])))

    def explain(self, *, filter: int, y: int, x: int) -> ConvStep:
        """The computation behind ``maps[filter, y, x]``."""
        return self.layer.explain(self.input, filter=filter, y=y, x=x)

    def picture(self, **options: Any) -> Image.Image:
        """The maps as :func:`~featuremaps.render_grid` draws them (``options`` are its keywords)."""
        return render_grid(self.maps, names=self.layer.filter_names,
                           title=options.pop("title", f"{self.source}: {self.layer.depth} filters"), **options)

    def _repr_png_(self) -> bytes:
        return png_bytes(self.picture(clip=1.0))

    def _repr_html_(self) -> str:
        shape_in, shape_out = "x".join(map(str, self.input.shape)), "x".join(map(str, self.maps.shape))
        lines = "<br>".join(html.escape(line) for line in self.formula)
        return (f"<p><b>{html.escape(self.source)}</b> {shape_in} &rarr; {shape_out} (D x H' x W')</p>"
                f"<pre>{lines}</pre><img src='{png_data_url(self.picture(clip=1.0))}' style='max-width:100%'>")


def convolve(image: ImageSource, filters: Any = "sobel", *, gray: bool = False, **settings: Any) -> ConvResult:
    """Run a :class:`~featuremaps.ConvLayer` of ``filters`` over ``image`` (a path, ``sample:NAME``, an array...).

    ``settings`` are the layer's keywords (``stride``, ``padding``, ``depth``, ``transposed``...).

    Example:
        >>> result = convolve("sample:cat", "sobel", stride=2, padding=1)
        >>> tuple(result.maps.shape)
        (2, 150, 226)
    """
    tensor = load_image(image, mode="gray" if gray else "auto")
    layer = ConvLayer(int(tensor.shape[0]), filters, **settings)
    with torch.inference_mode():
        maps = layer(tensor)
    return ConvResult(layer, tensor, maps, image if isinstance(image, str) else type(image).__name__)
