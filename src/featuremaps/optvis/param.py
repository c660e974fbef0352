"""Images as free parameters: decorrelated Fourier-space pixels (or plain pixels) and colours.

Optimising raw pixels finds high-frequency patterns that excite a channel without looking
like anything. Olah, Mordvintsev & Schubert ("Feature Visualization", Distill 2017) precondition
the search instead: the image is the inverse FFT of a spectrum whose frequencies are scaled by
``1 / frequency`` (so each frequency gets about the same energy, as in natural images), and its
three colours are a linear mix of decorrelated channels (the square root of ImageNet's RGB
covariance), squashed into [0, 1] by a sigmoid.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = ["COLOUR_CORRELATION_SQRT", "PARAMS", "ImageParam", "Param"]

Param = Literal["fourier", "pixel"]
PARAMS: tuple[str, ...] = ("fourier", "pixel")

COLOUR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                        [0.27, 0.00, -0.05],
                                        [0.27, -0.09, 0.03]])
"""Square root (via SVD) of the RGB colour covariance of ImageNet photos, as published with the paper."""


class ImageParam(nn.Module):
    """A batch of images ``(N, C, H, W)`` in (0, 1), made from free parameters.

    Args:
        count, channels, size: ``N``, ``C`` (1 or 3) and ``(H, W)``.
        param: ``"fourier"`` (scaled spectrum, the default) or ``"pixel"`` (one value per pixel).
        decorrelate: mix colours through :data:`COLOUR_CORRELATION_SQRT` (3 channels only).
        decay: the spectrum's scale is ``1 / frequency ** decay``.
        start: standard deviation of the initial values. The paper's 0.01 starts from a flat grey, on
            which many ReLU channels are zero and stay stuck; 0.5 starts from a faint random texture
            (on ``builtin:shapes`` it lifted 2 of 6 such channels above the best real image in 64 steps).
        generator: seeds the initial values.
    """

    def __init__(self, count: int, channels: int, size: tuple[int, int], *, param: Param = "fourier",
                 decorrelate: bool = True, decay: float = 1.0, start: float = 0.5,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        height, width = size
        self.size, self.param_kind = (height, width), param
        self.decorrelate = decorrelate and channels == 3
        if param == "fourier":
            fy = torch.fft.fftfreq(height)[:, None]
            fx = torch.fft.rfftfreq(width)[None, :]
            frequency = torch.sqrt(fy * fy + fx * fx).clamp(min=1.0 / max(height, width))
            self.register_buffer("scale", frequency.pow(-decay))
            shape: tuple[int, ...] = (count, channels, height, width // 2 + 1, 2)
        elif param == "pixel":
            self.register_buffer("scale", torch.ones(()))
            shape = (count, channels, height, width)
        else:
            raise ValueError(f"param must be one of {', '.join(PARAMS)}; got {param!r}")
        self.scale: torch.Tensor
        self.colours: torch.Tensor
        self.values = nn.Parameter(torch.randn(shape, generator=generator) * start)
        colours = COLOUR_CORRELATION_SQRT / COLOUR_CORRELATION_SQRT.norm(dim=0).max()
        self.register_buffer("colours", colours)

    def forward(self) -> torch.Tensor:
        """The images ``(N, C, H, W)``, values in (0, 1)."""
        if self.param_kind == "fourier":
            spectrum = torch.view_as_complex(self.values) * self.scale
            # Divided by 4 as in the paper's code, so the sigmoid starts in its linear range.
            images = torch.fft.irfft2(spectrum, s=self.size, norm="ortho") / 4.0
        else:
            images = self.values
        if self.decorrelate:
            images = torch.einsum("ij,njhw->nihw", self.colours, images)
        return torch.sigmoid(images)
