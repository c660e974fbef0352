"""render_grid: layout, colours that follow the values, labels, and raw saving."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featuremaps import SettingsError, render_grid, save_maps
from featuremaps.render.drawing import apply_colormap


def _tile_pixels(image, maps_shape, index, tile_size=128, columns=None):
    """Crop the tile of map ``index`` back out of the grid (the grid records where it put each tile)."""
    assert len(image.info["tiles"]) == maps_shape[0]
    left, top, width, height = image.info["tiles"][index]
    return np.asarray(image)[top : top + height, left : left + width]


def test_grid_has_one_tile_per_map_with_colours_following_values():
    maps = torch.zeros(5, 4, 4)
    maps[2, :, 2:] = 1.0  # right half bright
    image = render_grid(maps, tile_size=64)
    assert image.mode == "RGB"
    tile = _tile_pixels(image, maps.shape, 2, tile_size=64)
    assert tile.shape == (64, 64, 3)
    low, high = apply_colormap(np.array([[0.0, 1.0]]), 0.0, 1.0)[0]
    assert (tile[5, 5] == low).all() and (tile[5, 60] == high).all()
    # nearest-neighbour enlargement: every unit is a 16x16 block of one colour
    assert len(np.unique(tile[:16, :16].reshape(-1, 3), axis=0)) == 1


def test_per_map_normalisation_stretches_each_map_and_shared_does_not():
    maps = torch.stack([torch.linspace(0, 1, 16).reshape(4, 4), torch.linspace(0, 10, 16).reshape(4, 4)])
    per_map = render_grid(maps, normalize="map")
    first, second = _tile_pixels(per_map, maps.shape, 0), _tile_pixels(per_map, maps.shape, 1)
    assert (first == second).all()
    shared = render_grid(maps, normalize="shared")
    assert shared.size != per_map.size  # the colour bar


def test_grid_size_grows_with_depth_and_tile_size():
    small = render_grid(torch.rand(4, 10, 20), tile_size=32)
    large = render_grid(torch.rand(16, 10, 20), tile_size=128)
    assert large.width > small.width and large.height > small.height


def test_a_single_map_and_numpy_input_are_accepted():
    """One (H, W) numpy map is drawn as one tile: its low cells in viridis' darkest colour, its high cell in
    the brightest, in the map's own layout (the bright cell right of centre, one row above the middle)."""
    values = np.zeros((7, 9))
    values[2, 6] = 1.0
    picture = np.asarray(render_grid(values, tile_size=90).convert("RGB")).astype(int)
    low, high = np.array([68, 1, 84]), np.array([253, 231, 37])  # viridis at 0 and 1
    near_low = (np.abs(picture - low).sum(axis=2) < 12)
    near_high = (np.abs(picture - high).sum(axis=2) < 12)
    rows, cols = np.nonzero(near_low)
    top, left = rows.min(), cols.min()
    cell = (rows.max() - top + 1) / 7  # the tile spans the 7 x 9 cells
    assert near_high.sum() == pytest.approx(cell * cell, rel=0.3)  # exactly one cell is bright
    high_rows, high_cols = np.nonzero(near_high)
    assert int((high_rows.mean() - top) // cell) == 2 and int((high_cols.mean() - left) // cell) == 6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"maps": torch.rand(2, 3, 4, 5)}, r"maps must have shape \(D, H, W\) or \(H, W\); got \(2, 3, 4, 5\)"),
        ({"names": ["a"]}, "names has 1 entries for 3 maps"),
        ({"normalize": "global"}, "normalize must be one of map, shared; got 'global'"),
        ({"cmap": "not-a-map"}, "unknown colormap 'not-a-map'"),
        ({"clip": 60}, r"clip must be a percentage in \[0, 50\); got 60"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    options = {"maps": torch.rand(3, 4, 4)} | kwargs
    maps = options.pop("maps")
    with pytest.raises(SettingsError, match=message):
        render_grid(maps, **options)


def test_clip_saturates_outliers():
    maps = torch.zeros(1, 10, 10)
    maps[0, 0, 0] = 1000.0  # one outlier
    maps[0, 5:, :] = 1.0
    clipped = _tile_pixels(render_grid(maps, clip=2.0), maps.shape, 0)
    plain = _tile_pixels(render_grid(maps), maps.shape, 0)
    high = apply_colormap(np.array([[1.0]]), 0.0, 1.0)[0, 0]
    assert (clipped[-1, -1] == high).all()  # the 1.0 half is now the top colour
    assert not (plain[-1, -1] == high).all()


def test_save_maps_round_trip(tmp_path):
    maps = torch.randn(3, 5, 6)
    path = save_maps(maps, tmp_path / "sub" / "maps.npy")
    assert np.array_equal(np.load(path), maps.numpy())
    with pytest.raises(SettingsError, match=r"arrays are saved as \.npy; .*maps.txt. does not end in \.npy"):
        save_maps(maps, tmp_path / "maps.txt")
