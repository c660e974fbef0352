"""The bundled sample photos (``sample:NAME`` wherever an image is asked for), without torch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from featuremaps.errors import ImageError

__all__ = ["SAMPLE_PREFIX", "Sample", "sample_path", "samples"]

SAMPLE_PREFIX = "sample:"


@dataclass(frozen=True)
class Sample:
    """A bundled sample photo and where it comes from."""

    name: str
    file: str
    title: str
    author: str
    licence: str
    source: str
    url: str

    @property
    def path(self) -> Path:
        return Path(str(resources.files("featuremaps") / "assets" / "samples" / self.file))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` as ``load_image`` gives it (1 channel for a gray photo), read from the header."""
        from PIL import Image

        with Image.open(self.path) as image:
            return (1 if image.mode in ("L", "I;16", "1") else 3, image.height, image.width)


@lru_cache(maxsize=1)
def _sample_table() -> dict[str, Sample]:
    text = (resources.files("featuremaps") / "assets" / "samples" / "samples.json").read_text()
    return {entry["name"]: Sample(**entry) for entry in json.loads(text)}


def samples() -> list[Sample]:
    """The bundled sample photos, in a stable order (``featuremaps samples`` lists them)."""
    return list(_sample_table().values())


def sample_path(name: str) -> Path:
    """Path of the bundled sample ``name`` (with or without the ``sample:`` prefix)."""
    name = name.removeprefix(SAMPLE_PREFIX)
    table = _sample_table()
    if name not in table:
        raise ImageError(
            f"{SAMPLE_PREFIX}{name}",
            f"no such sample; available: {', '.join(table)} (see 'featuremaps samples')",
        )
    return table[name].path
