"""GIF, MP4 and JSON files of a scene: frame counts as documented."""

from __future__ import annotations

import json

import imageio.v3 as iio
import pytest
from PIL import Image

from featuremaps import ConvLayer, SettingsError
from featuremaps.illustrate import ConvScene, random_grid
from featuremaps.render.animate import save_scene


@pytest.fixture(scope="module")
def scene() -> ConvScene:
    x = random_grid(5, 4, 1, seed=0)
    return ConvScene.from_layer(ConvLayer(1, "random_int", depth=2, stride=(1, 2), padding=1), x)  # 2 x 5 x 2


def test_gif_has_one_frame_per_output_value_per_filter(scene, tmp_path):
    assert save_scene(scene, tmp_path / "a.gif") == 20
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 20 == len(scene)
        assert gif.info["loop"] == 0


def test_every_keeps_fewer_frames(scene, tmp_path):
    assert save_scene(scene, tmp_path / "a.gif", every=3) == 8  # 0, 3, ..., 18 and 19
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 8


def test_mp4_has_the_same_frames(scene, tmp_path):
    assert save_scene(scene, tmp_path / "a.mp4", fps=4) == 20
    frames = list(iio.imiter(tmp_path / "a.mp4"))
    assert len(frames) == 20 and frames[0].shape[0] % 16 == 0 and frames[0].shape[1] % 16 == 0


def test_json_and_bad_outputs(scene, tmp_path):
    assert save_scene(scene, tmp_path / "s.json") == 0
    assert json.loads((tmp_path / "s.json").read_text())["output"]["shape"] == [2, 5, 2]
    with pytest.raises(SettingsError, match=r"output must end in \.gif, \.mp4, \.png, \.svg, \.json; got"):
        save_scene(scene, tmp_path / "a.avi")
