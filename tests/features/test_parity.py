"""One model input for every path: the same file gives the same tensor, and the same vector, everywhere."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from featuremaps.batch import ExtractConfig, Store, run_extract
from featuremaps.data.datasets import folder_dataset
from featuremaps.extract import extract
from featuremaps.images import sample_path
from featuremaps.models import load_model, model_info
from featuremaps.web.service import Explorer, ExplorerSettings


def _photo(path, box=(40, 20, 440, 300)):
    Image.open(sample_path("astronaut")).convert("RGB").crop(box).save(path, quality=92)
    return path


def test_training_data_and_prediction_see_the_same_tensor(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
    cat = _photo(tmp_path / "data" / "a" / "photo.jpg")
    _photo(tmp_path / "data" / "b" / "other.jpg", box=(0, 0, 300, 300))
    for model_name in ("resnet18", "tinyvgg", "lenet5"):
        model_input = model_info(load_model(model_name)).input
        trained_on = model_input.normalise(folder_dataset(tmp_path / "data", model_input).images[0])
        assert torch.equal(trained_on, model_input.tensor(cat)), model_name


def test_extract_the_store_and_the_explorer_give_the_same_vector(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = _photo(folder / "astronaut.jpg")  # 400 x 280: under the explorer's 512 px, so it is not shrunk
    model = load_model("resnet18")
    direct = extract(model, photo, "layer3")["layer3"].mean(dim=(1, 2)).numpy()

    run_extract(folder, tmp_path / "store", ExtractConfig(model="resnet18", layers=("layer3",), workers=0))
    stored = np.asarray(Store(tmp_path / "store").features("layer3").column("vector").to_pylist()[0])

    explorer = Explorer(ExplorerSettings())
    image_id = explorer.add_image(photo.read_bytes()).id
    seen, entry = explorer.layer_maps(image_id, "resnet18", "layer3")
    served = seen.maps[entry.name].mean(dim=(1, 2)).numpy()

    np.testing.assert_allclose(stored, direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served, direct, rtol=1e-5, atol=1e-6)
