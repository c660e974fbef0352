"""Decoding where it is fastest: JPEG bytes batched on the device, the rest in workers; the same stores either way."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from featuremaps.batch import ExtractConfig, Store, run_extract
from featuremaps.batch.decode import assemble, read_item
from featuremaps.features.inputs import IMAGENET_MEAN, IMAGENET_STD, ModelInput
from featuremaps.images import sample_path

from .conftest import write_photos

RESNET_INPUT = ModelInput(3, (224, 224), 256, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def _odd_jpegs(folder):
    """A CMYK JPEG, a progressive one, an EXIF-rotated one, and one cut in the middle of its data."""
    photo = Image.open(sample_path("rocket")).convert("RGB").crop((0, 0, 320, 240))
    photo.convert("CMYK").save(folder / "odd_cmyk.jpg", quality=90)
    photo.save(folder / "odd_progressive.jpg", quality=90, progressive=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.save(folder / "odd_rotated.jpg", quality=90, exif=exif)
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90)
    (folder / "odd_truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _vectors(store: Store, layer: str) -> dict[int, np.ndarray]:
    table = store.features(layer)
    return dict(zip(table.column("index").to_pylist(), np.stack(table.column("vector").to_numpy(zero_copy_only=False))))


def test_read_item_defers_plain_jpegs_and_decodes_everything_else(tmp_path):
    write_photos(tmp_path, 1, size=(200, 150))
    _odd_jpegs(tmp_path)
    Image.new("RGBA", (40, 30), (255, 0, 0, 128)).save(tmp_path / "alpha.png")
    kinds = {}
    for path in sorted(tmp_path.iterdir()):
        item = read_item(0, str(path), RESNET_INPUT, defer_jpeg=True)
        kinds[path.name] = "jpeg" if "jpeg" in item else "tensor" if "tensor" in item else item["reason"]
    assert kinds["photo_0000.jpg"] == kinds["odd_progressive.jpg"] == "jpeg"
    assert kinds["odd_truncated.jpg"] == "jpeg"  # its header is fine: the batched decoder finds out
    assert kinds["odd_cmyk.jpg"] == kinds["odd_rotated.jpg"] == kinds["alpha.png"] == "tensor"
    rotated = read_item(0, str(tmp_path / "odd_rotated.jpg"), RESNET_INPUT, defer_jpeg=True)
    assert (rotated["width"], rotated["height"]) == (240, 320)  # as a viewer shows it


def test_assemble_decodes_the_batch_and_falls_back_for_refused_jpegs(tmp_path):
    write_photos(tmp_path, 3, size=(200, 150))
    _odd_jpegs(tmp_path)
    paths = sorted(str(p) for p in tmp_path.iterdir())
    items = [read_item(i, path, RESNET_INPUT, defer_jpeg=True) for i, path in enumerate(paths)]
    assembled = assemble(items, RESNET_INPUT, torch.device("cpu"))
    assert [path.rsplit("/", 1)[-1] for _, path, _ in assembled.bad] == ["odd_truncated.jpg"]
    assert "truncated" in assembled.bad[0][2]
    assert assembled.batch is not None and assembled.batch.shape == (len(paths) - 1, 3, 224, 224)
    by_path = {item["path"]: row for row, item in enumerate(assembled.good)}
    for path in paths:
        if path.endswith("odd_truncated.jpg"):
            continue
        torch.testing.assert_close(assembled.batch[by_path[path]], RESNET_INPUT.tensor(path))  # the same input


@pytest.mark.parametrize("model", ["resnet18", "tinyvgg"])
def test_decoding_in_threads_workers_or_on_the_device_gives_identical_stores(tmp_path, model):
    folder = tmp_path / "photos"
    write_photos(folder, 10, size=(200, 150), seed=9)
    _odd_jpegs(folder)
    layers = ("layer1", "layer3") if model == "resnet18" else ("relu1_2", "pool2")
    stores = {}
    for decode in ("threads", "workers", "device"):
        config = ExtractConfig(model=model, layers=layers, batch_size=4, workers=1, shard_size=6, top_k=2,
                               decode=decode)
        summary = run_extract(folder, tmp_path / decode, config)
        assert (summary.images, summary.errors) == (14, 1)
        stores[decode] = Store(tmp_path / decode)
    for other in ("workers", "device"):
        for layer in layers:
            threads, vectors = _vectors(stores["threads"], layer), _vectors(stores[other], layer)
            assert sorted(threads) == sorted(vectors)
            for index in threads:
                np.testing.assert_array_equal(threads[index], vectors[index])
        for name in ("stats", "topk", "errors"):
            assert stores["threads"].table(name).equals(stores[other].table(name)), (other, name)


def test_the_fast_decoder_matches_pillow_within_the_stated_tolerance(tmp_path):
    """libjpeg-turbo + torch's uint8 resize against Pillow's decode + resize: cosine >= 0.999 per vector."""
    from featuremaps.extract import extract
    from featuremaps.models import load_model

    write_photos(tmp_path, 8, size=(420, 290), seed=2)
    model = load_model("resnet18")
    worst = 1.0
    for path in sorted(tmp_path.iterdir()):
        pil = Image.open(path).convert("RGB")
        (width, height), box = RESNET_INPUT.geometry(*pil.size)
        reference = np.asarray(pil.resize((width, height), Image.Resampling.BILINEAR).crop(box))
        x_ref = RESNET_INPUT.normalise(torch.from_numpy(reference.copy()).permute(2, 0, 1))
        for layer in ("layer1", "layer4"):
            fast = extract(model, path, layer)[layer].mean(dim=(1, 2))
            slow = extract(model, x_ref, layer)[layer].mean(dim=(1, 2))
            worst = min(worst, float(torch.nn.functional.cosine_similarity(fast, slow, dim=0)))
    print(f"worst cosine over 8 photos x 2 layers: {worst:.8f}")
    assert worst >= 0.999


def test_compile_in_a_batch_run_gives_the_same_store(tmp_path):
    folder = tmp_path / "photos"
    write_photos(folder, 6, size=(120, 90))
    base = dict(model="tinyvgg", layers=("relu1_2", "pool2"), batch_size=3, workers=0, shard_size=3, top_k=2)
    run_extract(folder, tmp_path / "plain", ExtractConfig(**base))
    run_extract(folder, tmp_path / "compiled", ExtractConfig(**base, compile=True))
    for layer in ("relu1_2", "pool2"):
        plain, compiled = _vectors(Store(tmp_path / "plain"), layer), _vectors(Store(tmp_path / "compiled"), layer)
        for index in plain:
            np.testing.assert_allclose(compiled[index], plain[index], rtol=1e-4, atol=1e-5)


def test_a_model_without_a_fixed_input_size_is_refused(tmp_path):
    from featuremaps.errors import SettingsError

    write_photos(tmp_path / "photos", 2)
    with pytest.raises(SettingsError, match="frame 'whole'.*cannot be batched"):
        run_extract(tmp_path / "photos", tmp_path / "store", ExtractConfig(model="builtin:shapes-seg",
                                                                          layers=("backbone.relu1_2",)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_decode_and_reductions_match_the_cpu_store(tmp_path):
    folder = tmp_path / "photos"
    write_photos(folder, 24, size=(420, 290), seed=4)
    _odd_jpegs(folder)
    base = dict(model="resnet18", layers=("layer1", "layer4"), batch_size=8, workers=2, shard_size=10, top_k=3)
    run_extract(folder, tmp_path / "cpu", ExtractConfig(**base))
    summary = run_extract(folder, tmp_path / "cuda", ExtractConfig(**base, device="cuda"))
    assert summary.errors == 1
    for layer in ("layer1", "layer4"):
        cpu, cuda = _vectors(Store(tmp_path / "cpu"), layer), _vectors(Store(tmp_path / "cuda"), layer)
        assert sorted(cpu) == sorted(cuda)
        worst = min(float(np.dot(cpu[i], cuda[i]) / (np.linalg.norm(cpu[i]) * np.linalg.norm(cuda[i]))) for i in cpu)
        assert worst >= 0.999, (layer, worst)
    assert Store(tmp_path / "cpu").table("errors").equals(Store(tmp_path / "cuda").table("errors"))
