"""The Ray engine writes the same store; the microscope site browses it from the file system."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featuremaps.batch import ExtractConfig, Store, run_extract
from featuremaps.files import LEDGER


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
def test_ray_engine_writes_the_same_store(stores, require, decode, tmp_path, monkeypatch):
    require("ray")
    folder, local, root = stores
    monkeypatch.setenv("HOME", str(tmp_path))  # where Ray would leave an auth token
    config = ExtractConfig(model="resnet18", layers=("layer1", "layer4"), batch_size=4, shard_size=6, top_k=2,
                           workers=1, engine="ray", decode=decode)
    summary = run_extract(folder, root / f"ray-{decode}", config)
    remote = Store(root / f"ray-{decode}")
    assert summary.errors == 1 and summary.readable == 14
    # a private Ray: its node on the loopback interface (never the machine's address); both actors worked
    assert [node["address"] for node in summary.nodes] == ["127.0.0.1"] and summary.nodes[0]["rows"] == 15
    assert not (tmp_path / ".ray").exists(), "the private Ray left a file in the user's home (~/.ray/auth_token)"
    for layer in ("layer1", "layer4"):
        a, b = local.features(layer), remote.features(layer)
        assert a.column("index").to_pylist() == b.column("index").to_pylist()
        np.testing.assert_array_equal(np.stack(a.column("vector").to_numpy(zero_copy_only=False)),
                                      np.stack(b.column("vector").to_numpy(zero_copy_only=False)))
    assert local.table("stats").equals(remote.table("stats"))
    assert local.table("topk").equals(remote.table("topk"))
    assert local.table("errors").equals(remote.table("errors"))


def _layer_data(site: Path, layer: str) -> dict:
    page = (site / layer / "index.html").read_text()
    return json.loads(re.search(r"<script type='application/json' id='data'>(.*?)</script>", page, re.S).group(1))


def test_microscope_site_from_the_cli(stores, tmp_path):
    _, local, _ = stores
    featuremaps = Path(sys.executable).parent / "featuremaps"
    site = tmp_path / "site"
    result = subprocess.run([str(featuremaps), "microscope", str(local.root), "-o", str(site)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    index = site / "index.html"
    assert result.stdout.strip() == str(index.resolve())
    assert "layer1" in index.read_text() and "layer4" in index.read_text()
    assert "<title>featuremaps microscope (untrained: random weights)</title>" in index.read_text()
    assert local.manifest().weights_label == "untrained (random) weights"
    # Compact: per layer one page and one sprite per 64 channels (layer1: 64, layer4: 512), not a file per patch.
    files = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file() and p.name != LEDGER)
    assert files == ["index.html", "layer1/index.html", "layer1/patches-0.jpg", "layer4/index.html",
                     *[f"layer4/patches-{i}.jpg" for i in range(8)], "layers.json"]
    assert sorted(p.relative_to(site).as_posix() for p in site.rglob(LEDGER)) == [
        LEDGER, f"layer1/{LEDGER}", f"layer4/{LEDGER}"]  # what featuremaps wrote, so a rerun may replace it
    data = _layer_data(site, "layer1")
    assert data["weights"] == "untrained (random) weights" and data["rf"] == [43, 43]
    seven = data["channels"][7]
    assert len(seven["patches"]) == 2 and set(seven) >= {"mean", "std", "max", "selectivity", "positive"}
    sprite_name, left, top = seven["patches"][1]["sprite"]
    assert (sprite_name, left, top) == ("patches-0.jpg", 96, 7 * 96)
    with Image.open(site / "layer1" / sprite_name) as sprite:
        assert sprite.size == (2 * 96, 64 * 96)


def test_microscope_patches_are_clipped_to_the_image_and_carry_the_heat_map(stores, tmp_path):
    """layer4's receptive field (435 px) is larger than the 224 px input: its patches are the whole
    image, never grey padding; layer1's (43 px) are crops; both have the channel's heat drawn in."""
    from featuremaps.batch.microscope import PATCH, _Geometry, build_microscope

    _, local, _ = stores
    site = build_microscope(local.root, tmp_path / "site").parent
    for layer in ("layer1", "layer4"):
        data = _layer_data(site, layer)
        with Image.open(site / layer / "patches-0.jpg") as sprite:
            tile = np.asarray(sprite.convert("RGB").crop((0, 0, PATCH, PATCH)), dtype=np.float32)
        grey = np.all(np.abs(tile - 128) < 6, axis=2).mean()
        assert grey < 0.05, f"{layer}: {grey:.0%} of the best patch is padding grey"
        assert data["channels"][0]["patches"], layer
    layer4 = next(entry for entry in local.manifest().layers if entry["name"] == "layer4")
    assert _Geometry.of(layer4).box(3, 3, 224, 224) == (0, 0, 224, 224)  # clipped: the whole image
    layer1 = next(entry for entry in local.manifest().layers if entry["name"] == "layer1")
    left, top, right, bottom = _Geometry.of(layer1).box(10, 20, 224, 224)
    start, jump = layer1["start"], layer1["jump"]
    assert (left, top) == (start[1] + 20 * jump[1], start[0] + 10 * jump[0]) and (right - left, bottom - top) == (43, 43)


def test_heat_puts_each_unit_at_its_receptive_field_centre():
    import torch

    from featuremaps.batch.microscope import _Geometry

    geometry = _Geometry(start=(-3.0, -3.0), jump=(4.0, 4.0), size=(11.0, 11.0))
    channel_map = torch.zeros(5, 5)
    channel_map[2, 3] = 1.0  # unit (2, 3): field starts at (-3 + 8, -3 + 12) = (5, 9), centre (10, 14)
    heat = geometry.heat(channel_map, np.arange(20, dtype=np.float64), np.arange(20, dtype=np.float64))
    assert np.unravel_index(heat.argmax(), heat.shape) == (10, 14) and heat.max() == pytest.approx(1.0)
    assert heat[10, 12] == pytest.approx(0.5)  # half-way to the next unit's centre


def test_microscope_refuses_an_unfinished_store(tmp_path):
    from featuremaps.batch.microscope import build_microscope
    from featuremaps.errors import SettingsError

    with pytest.raises(SettingsError, match="not a featuremaps store"):
        build_microscope(tmp_path, tmp_path / "site")
