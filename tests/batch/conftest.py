"""A folder of real JPEG crops of the sample photos, plus odd and broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featuremaps.images import sample_path


def write_photos(folder: Path, count: int, size=(120, 90), seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = [Image.open(sample_path(name)).convert("RGB") for name in ("cat", "coffee", "astronaut", "rocket")]
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        width, height = size
        left = int(rng.integers(0, photo.width - width))
        top = int(rng.integers(0, photo.height - height))
        path = folder / f"photo_{i:04d}.jpg"
        photo.crop((left, top, left + width, top + height)).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.fixture
def photo_folder(tmp_path):
    folder = tmp_path / "photos"
    write_photos(folder, 22)
    (folder / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (folder / "zz_empty.png").write_bytes(b"")
    Image.new("RGBA", (50, 40), (255, 0, 0, 128)).save(folder / "zz_alpha.png")
    Image.new("L", (60, 30), 200).save(folder / "zz_gray.bmp")
    return folder
