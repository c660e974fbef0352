"""The local engine: store contents, errors, equality with extract(), top-k, resume rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from featuremaps.batch import ExtractConfig, Store, run_extract
from featuremaps.batch.sources import list_sources
from featuremaps.batch.topk import TopK
from featuremaps.errors import SettingsError
from featuremaps.extract import extract
from featuremaps.models import load_model

from .conftest import write_photos

LAYERS = ("layer1", "layer3")


def _vectors(store: Store, layer: str) -> tuple[list[int], np.ndarray]:
    table = store.features(layer)
    return table.column("index").to_pylist(), np.stack(table.column("vector").to_numpy(zero_copy_only=False))


@pytest.fixture
def finished(photo_folder, tmp_path):
    config = ExtractConfig(model="resnet18", layers=LAYERS, batch_size=5, workers=1, shard_size=8, top_k=3)
    summary = run_extract(photo_folder, tmp_path / "store", config)
    return summary, Store(tmp_path / "store"), photo_folder


def test_odd_and_broken_files_are_recorded_and_the_job_goes_on(finished):
    summary, store, _ = finished
    assert (summary.images, summary.readable, summary.errors) == (26, 24, 2)
    errors = {row["path"].rsplit("/", 1)[-1]: row["reason"] for row in store.table("errors").to_pylist()}
    assert set(errors) == {"zz_broken.jpg", "zz_empty.png"}
    assert "corrupt image header" in errors["zz_broken.jpg"] and "empty" in errors["zz_empty.png"]
    indices, vectors = _vectors(store, "layer3")
    assert len(indices) == 24 == len(set(indices)) and vectors.shape == (24, 256)
    table = store.features("layer1")
    assert table.schema.field("vector").type.list_size == 64
    assert set(table.column_names) >= {"path", "layer", "vector", "width", "height", "sha256"}
    manifest = json.loads((store.root / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["layers"] == list(LAYERS)
    assert len(manifest["fingerprint"]) == 16


def test_pooled_vectors_equal_extract_on_the_same_images(finished):
    _, store, folder = finished
    model = load_model("resnet18")
    table = store.features("layer3").to_pylist()
    for row in table[:5] + [r for r in table if r["path"].endswith(("zz_alpha.png", "zz_gray.bmp"))]:
        maps = extract(model, row["path"], "layer3")["layer3"]
        np.testing.assert_allclose(np.asarray(row["vector"]), maps.mean(dim=(1, 2)).numpy(), rtol=1e-5, atol=1e-6)
        assert row["width"] > 0 and len(row["sha256"]) == 64


def test_top_k_equals_brute_force(finished):
    _, store, _ = finished
    model = load_model("resnet18")
    sources = list_sources(store.root.parent / "photos")
    readable = [i for i, p in enumerate(sources) if not p.endswith(("zz_broken.jpg", "zz_empty.png"))]
    maps = torch.stack([extract(model, sources[i], "layer1")["layer1"] for i in readable])  # (N, 64, 56, 56)
    best = maps.flatten(2).max(dim=2)  # values and positions per image and channel
    rows = [r for r in store.table("topk").to_pylist() if r["layer"] == "layer1"]
    for channel in (0, 17, 63):
        order = torch.argsort(best.values[:, channel], descending=True, stable=True)[:3]
        expected = [readable[int(i)] for i in order]
        got = [r for r in sorted(rows, key=lambda r: r["rank"]) if r["channel"] == channel]
        assert [r["index"] for r in got] == expected
        first = got[0]
        assert first["value"] == pytest.approx(float(best.values[order[0], channel]), rel=1e-5)
        assert first["y"] * 56 + first["x"] == int(best.indices[order[0], channel])


def test_statistics_equal_brute_force(finished):
    _, store, _ = finished
    model = load_model("resnet18")
    sources = [r["path"] for r in store.features("layer1").to_pylist()]
    maps = torch.stack([extract(model, p, "layer1")["layer1"] for p in sources]).double()
    stats = [r for r in store.table("stats").to_pylist() if r["layer"] == "layer1"]
    values = maps.transpose(0, 1).flatten(1)  # (C, N*H*W)
    for channel in (0, 31):
        row = stats[channel]
        assert row["mean"] == pytest.approx(float(values[channel].mean()), rel=1e-6)
        assert row["std"] == pytest.approx(float(values[channel].std(unbiased=False)), rel=1e-5)
        assert row["max"] == pytest.approx(float(values[channel].max()), rel=1e-6)
        assert row["fraction_positive"] == pytest.approx(float((values[channel] > 0).double().mean()))


def test_topk_merge_keeps_the_best_and_breaks_ties_by_index():
    top = TopK.empty(1, 2)
    top.update(torch.tensor([[[[1.0]]], [[[3.0]]]]), torch.tensor([5, 6]))
    top.update(torch.tensor([[[[3.0]]], [[[2.0]]]]), torch.tensor([2, 9]))
    assert top.values.tolist() == [[3.0, 3.0]] and top.images.tolist() == [[2, 6]]


def test_an_existing_store_is_never_overwritten_and_other_configs_are_refused(finished, tmp_path):
    _, store, folder = finished
    config = ExtractConfig(model="resnet18", layers=LAYERS, batch_size=5, shard_size=8, top_k=3)
    with pytest.raises(SettingsError, match="a store is already there; pass --resume"):
        run_extract(folder, store.root, config)
    other = ExtractConfig(model="resnet18", layers=("layer1",), pool="max", shard_size=8, top_k=3)
    with pytest.raises(SettingsError, match=r"cannot resume with another config; layers: \['layer1', 'layer3'\] "
                                            r"in the store, \['layer1'\] now; pool: 'avg' in the store, 'max' now"):
        run_extract(folder, store.root, other, resume=True)
    again = run_extract(folder, store.root, config, resume=True)
    assert again.shards_skipped == again.shards == 4


def test_pool_none_keeps_full_maps_in_zarr(photo_folder, tmp_path):
    import zarr

    config = ExtractConfig(model="tinyvgg", layers=("pool1",), pool="none", batch_size=4, shard_size=10, top_k=0)
    run_extract(photo_folder, tmp_path / "store", config)
    array = zarr.open_array(str(tmp_path / "store" / "maps" / "pool1.zarr"))
    assert array.shape == (26, 10, 30, 30) and array.chunks == (1, 10, 30, 30)
    first = extract(load_model("tinyvgg"), list_sources(photo_folder)[0], "pool1")["pool1"]
    np.testing.assert_allclose(array[0], first.numpy(), rtol=1e-5, atol=1e-6)
    assert np.isnan(array[list_sources(photo_folder).index(str(photo_folder / "zz_broken.jpg"))]).all()


@pytest.mark.parametrize("kind", ["txt", "csv", "parquet"])
def test_list_sources_from_files(tmp_path, kind):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.jpg").write_bytes(b"x")
    if kind == "txt":
        (tmp_path / "list.txt").write_text("# images\na.jpg\n\n/abs/b.png\n")
    elif kind == "csv":
        (tmp_path / "list.csv").write_text("label,path\ncat,a.jpg\ndog,/abs/b.png\n")
    else:
        pq.write_table(pa.table({"path": ["a.jpg", "/abs/b.png"]}), tmp_path / "list.parquet")
    assert list_sources(tmp_path / f"list.{kind}") == [str(tmp_path / "a.jpg"), "/abs/b.png"]


def test_bad_sources_and_settings(tmp_path):
    with pytest.raises(SettingsError, match="source not found"):
        list_sources(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SettingsError, match="no image files"):
        list_sources(tmp_path / "empty")
    with pytest.raises(SettingsError, match="pool must be one of avg, max, avgmax, none; got 'sum'"):
        ExtractConfig(model="resnet18", layers=("layer1",), pool="sum")
    with pytest.raises(SettingsError, match="fp16 needs a CUDA device"):
        ExtractConfig(model="resnet18", layers=("layer1",), precision="fp16")
    with pytest.raises(SettingsError, match=r"layers fc have no feature maps"):
        run_extract([str(tmp_path / "x.jpg")], tmp_path / "s", ExtractConfig(model="resnet18", layers=("fc",)))


@pytest.mark.parametrize("pool, size", [("avg", 32), ("avgmax", 64)])
def test_a_shard_of_only_unreadable_images_keeps_the_vector_size(tmp_path, pool, size):
    # found on the Ray cluster: the last shard held only a broken file, its empty table had vectors of 1,
    # and reading the layer's features failed on the mismatch
    folder = tmp_path / "photos"
    write_photos(folder, 4, seed=2)
    for name in ("zz_a.jpg", "zz_b.jpg"):
        (folder / name).write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    run_extract(folder, tmp_path / "store", ExtractConfig(model="builtin:shapes", layers=("conv1_2",), pool=pool,
                                                          shard_size=4, batch_size=2, workers=0))
    table = Store(tmp_path / "store").features("conv1_2")
    assert table.num_rows == 4 and table.schema.field("vector").type.list_size == size
