"""The Ray engine writes the same store; the microscope site browses it from the file system."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from featuremaps.batch import ExtractConfig, Store, run_extract


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from .conftest import write_photos

    root = tmp_path_factory.mktemp("ray")
    folder = root / "photos"
    write_photos(folder, 14, seed=5)
    (folder / "zz_bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    base = dict(model="resnet18", layers=("layer1", "layer4"), batch_size=4, shard_size=6, top_k=2, workers=0)
    run_extract(folder, root / "local", ExtractConfig(**base))
    return folder, Store(root / "local"), root


@pytest.mark.timeout(600)
@pytest.mark.parametrize("decode", ["workers", "device"])
def test_ray_engine_writes_the_same_store(stores, require, decode):
    require("ray")
    folder, local, root = stores
    config = ExtractConfig(model="resnet18", layers=("layer1", "layer4"), batch_size=4, shard_size=6, top_k=2,
                           workers=1, engine="ray", decode=decode)
    summary = run_extract(folder, root / f"ray-{decode}", config)
    remote = Store(root / f"ray-{decode}")
    assert summary.errors == 1 and summary.readable == 14
    for layer in ("layer1", "layer4"):
        a, b = local.features(layer), remote.features(layer)
        assert a.column("index").to_pylist() == b.column("index").to_pylist()
        np.testing.assert_array_equal(np.stack(a.column("vector").to_numpy(zero_copy_only=False)),
                                      np.stack(b.column("vector").to_numpy(zero_copy_only=False)))
    assert local.table("stats").equals(remote.table("stats"))
    assert local.table("topk").equals(remote.table("topk"))
    assert local.table("errors").equals(remote.table("errors"))


def test_microscope_site_from_the_cli(stores, tmp_path):
    _, local, _ = stores
    featuremaps = Path(sys.executable).parent / "featuremaps"
    result = subprocess.run([str(featuremaps), "microscope", str(local.root), "-o", str(tmp_path / "site")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    index = tmp_path / "site" / "index.html"
    assert result.stdout.strip() == str(index.resolve())
    assert "layer1" in index.read_text() and "layer4" in index.read_text()
    channel = (tmp_path / "site" / "layer1" / "7.html").read_text()
    images = re.findall(r"src='([^']+)'", channel)
    assert len(images) == 2 and all((tmp_path / "site" / "layer1" / name).is_file() for name in images)
    assert "43x43 input pixels" in channel and "mean " in channel
    from PIL import Image

    with Image.open(tmp_path / "site" / "layer1" / images[0]) as patch:
        assert patch.size == (96, 96)


def test_microscope_refuses_an_unfinished_store(tmp_path):
    from featuremaps.batch.microscope import build_microscope
    from featuremaps.errors import SettingsError

    with pytest.raises(SettingsError, match="not a featuremaps store"):
        build_microscope(tmp_path, tmp_path / "site")
