"""A corpus of real, odd and broken image files, written here, through load_image."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import featuremaps
from featuremaps import ImageError, load_image
from featuremaps.errors import SettingsError
from featuremaps.images import MAX_PIXELS, sample_path, samples


def _save(image: Image.Image, path, **options) -> bytes:
    image.save(path, **options)
    return path.read_bytes()


def _gradient_rgb(height: int = 6, width: int = 10) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 20, y * 30, (x + y) * 10], axis=2).astype(np.uint8)  # (H, W, 3)


# --- sources --------------------------------------------------------------------------


def test_png_rgb_values_are_exact(tmp_path):
    array = _gradient_rgb()
    _save(Image.fromarray(array), tmp_path / "a.png")
    tensor = load_image(tmp_path / "a.png")
    assert tensor.dtype == torch.float32 and tensor.shape == (3, 6, 10)
    np.testing.assert_allclose(tensor.permute(1, 2, 0).numpy() * 255, array, atol=1e-4)


def test_path_bytes_pil_array_and_tensor_give_the_same_tensor(tmp_path):
    array = _gradient_rgb()
    data = _save(Image.fromarray(array), tmp_path / "a.png")
    from_path = load_image(str(tmp_path / "a.png"))
    for other in (data, Image.fromarray(array), array, torch.from_numpy(array).permute(2, 0, 1)):
        torch.testing.assert_close(load_image(other), from_path)


def test_grayscale_stays_one_channel_unless_rgb_is_asked(tmp_path):
    _save(Image.fromarray(np.full((4, 5), 51, np.uint8)), tmp_path / "g.png")
    gray = load_image(tmp_path / "g.png")
    assert gray.shape == (1, 4, 5)
    assert torch.allclose(gray, torch.full((1, 4, 5), 0.2))
    rgb = load_image(tmp_path / "g.png", mode="rgb")
    assert rgb.shape == (3, 4, 5) and torch.allclose(rgb, torch.full((3, 4, 5), 0.2))


def test_gray_mode_uses_luma_weights():
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    assert torch.allclose(load_image(red, mode="gray"), torch.full((1, 2, 2), 0.299))


def test_rgba_is_composited_on_the_background(tmp_path):
    pixel = np.array([[[255, 0, 0, 128]]], np.uint8)
    _save(Image.fromarray(pixel), tmp_path / "t.png")
    alpha = 128 / 255
    on_white = load_image(tmp_path / "t.png")[:, 0, 0]
    torch.testing.assert_close(on_white, torch.tensor([1.0, 1 - alpha, 1 - alpha]), atol=1e-6, rtol=0)
    on_black = load_image(tmp_path / "t.png", background=(0, 0, 0))[:, 0, 0]
    torch.testing.assert_close(on_black, torch.tensor([alpha, 0.0, 0.0]), atol=1e-6, rtol=0)


def test_la_image_stays_gray_and_is_composited(tmp_path):
    luminance = Image.fromarray(np.zeros((1, 2), np.uint8))  # black everywhere
    alpha = Image.fromarray(np.array([[0, 255]], np.uint8))  # transparent, then opaque
    la = Image.merge("LA", [luminance, alpha])
    _save(la, tmp_path / "la.png")
    tensor = load_image(tmp_path / "la.png")
    assert tensor.shape == (1, 1, 2)
    torch.testing.assert_close(tensor[0, 0], torch.tensor([1.0, 0.0]))  # transparent -> white, opaque black


def test_palette_with_transparency_is_composited(tmp_path):
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([0, 0, 255, 255, 0, 0] + [0] * 762)
    palette_image.putdata([0, 1])
    palette_image.info["transparency"] = 0
    _save(palette_image, tmp_path / "p.png", transparency=0)
    tensor = load_image(tmp_path / "p.png")
    assert tensor.shape == (3, 1, 2)
    torch.testing.assert_close(tensor[:, 0, 0], torch.ones(3))  # transparent blue -> white
    torch.testing.assert_close(tensor[:, 0, 1], torch.tensor([1.0, 0.0, 0.0]))


def test_palette_without_transparency_gives_its_colours(tmp_path):
    palette_image = Image.new("P", (1, 1))
    palette_image.putpalette([10, 200, 30] + [0] * 765)
    _save(palette_image, tmp_path / "p.bmp")
    torch.testing.assert_close(load_image(tmp_path / "p.bmp")[:, 0, 0], torch.tensor([10, 200, 30]) / 255.0)


def test_sixteen_bit_png_is_scaled_by_65535(tmp_path):
    values = np.array([[0, 32768, 65535]], np.uint16)
    _save(Image.fromarray(values), tmp_path / "d.png")
    tensor = load_image(tmp_path / "d.png")
    assert tensor.shape == (1, 1, 3)
    torch.testing.assert_close(tensor[0, 0], torch.tensor([0.0, 32768 / 65535, 1.0]))


def test_sixteen_bit_tiff_is_scaled_by_65535(tmp_path):
    values = np.array([[1000, 65535]], np.uint16)
    _save(Image.fromarray(values), tmp_path / "d.tif")
    torch.testing.assert_close(load_image(tmp_path / "d.tif")[0, 0], torch.tensor([1000 / 65535, 1.0]))


def test_cmyk_is_converted_to_rgb(tmp_path):
    cyan = Image.new("CMYK", (4, 4), (255, 0, 0, 0))
    _save(cyan, tmp_path / "c.tif")
    torch.testing.assert_close(load_image(tmp_path / "c.tif")[:, 0, 0], torch.tensor([0.0, 1.0, 1.0]))
    _save(cyan, tmp_path / "c.jpg", quality=95)
    from_jpeg = load_image(tmp_path / "c.jpg")[:, 2, 2]
    assert from_jpeg.shape == (3,) and from_jpeg[0] < 0.1 and from_jpeg[1] > 0.9 and from_jpeg[2] > 0.9


def test_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("L", (3, 3), 0), Image.new("L", (3, 3), 255)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    tensor = load_image(tmp_path / "a.gif", mode="gray")
    assert tensor.shape == (1, 3, 3) and float(tensor.max()) == 0.0


@pytest.mark.parametrize("suffix, options", [(".webp", {"lossless": True}), (".bmp", {}), (".tiff", {})])
def test_lossless_formats_round_trip(tmp_path, suffix, options):
    array = _gradient_rgb()
    _save(Image.fromarray(array), tmp_path / f"a{suffix}", **options)
    np.testing.assert_allclose(load_image(tmp_path / f"a{suffix}").permute(1, 2, 0).numpy() * 255, array, atol=1e-4)


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:, :8] = (255, 0, 0)  # left half red
    stored[:, 8:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90 degrees clockwise to view
    _save(Image.fromarray(stored), tmp_path / "o.jpg", exif=exif, quality=95)
    tensor = load_image(tmp_path / "o.jpg")
    assert tensor.shape == (3, 16, 8)
    assert tensor[0, :6].mean() > 0.9 and tensor[2, :6].mean() < 0.1  # top is the old left: red
    assert tensor[2, 10:].mean() > 0.9 and tensor[0, 10:].mean() < 0.1  # bottom is blue


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.array([[0, 65535]], np.uint16), [0.0, 1.0]),
        (np.array([[False, True]]), [0.0, 1.0]),
        (np.array([[0.25, 0.75]], np.float64), [0.25, 0.75]),
    ],
)
def test_array_dtypes_are_scaled(array, expected):
    torch.testing.assert_close(load_image(array)[0, 0], torch.tensor(expected))


def test_uint8_tensor_in_chw_order_is_scaled():
    tensor = torch.tensor([[[255, 0]], [[0, 255]], [[0, 0]]], dtype=torch.uint8)
    out = load_image(tensor)
    assert out.shape == (3, 1, 2)
    torch.testing.assert_close(out[:, 0, 1], torch.tensor([0.0, 1.0, 0.0]))


def test_samples_are_listed_with_licence_and_all_load():
    listed = samples()
    assert len(listed) >= 3
    for sample in listed:
        assert sample.licence in ("CC0-1.0", "Public domain") and sample.source and sample.author
        tensor = load_image(f"sample:{sample.name}")
        assert tensor.ndim == 3 and tensor.shape[0] in (1, 3) and min(tensor.shape[1:]) >= 256
    assert sample_path("cat").is_file()


# --- errors ---------------------------------------------------------------------------


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.png: file not found"):
        load_image(tmp_path / "nope.png")


def test_directory_is_refused(tmp_path):
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)


@pytest.mark.parametrize("make", [lambda p: p.write_bytes(b"") or p, lambda p: b""])
def test_zero_bytes_are_refused(tmp_path, make):
    with pytest.raises(ImageError, match=r"empty \(0 bytes\)"):
        load_image(make(tmp_path / "empty.png"))


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_truncated_files_are_refused(tmp_path, suffix):
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = _save(noisy, tmp_path / f"full{suffix}")
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.\w+: (truncated or corrupt image data|corrupt image header)"):
        load_image(tmp_path / f"cut{suffix}")


def test_text_file_is_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("these are notes, not pixels\n" * 10)
    with pytest.raises(ImageError, match=r"notes\.png: not an image"):
        load_image(tmp_path / "notes.png")


@pytest.mark.parametrize("fmt, suffix", [("PCX", ".pcx"), ("TGA", ".tga"), ("ICO", ".ico")])
def test_other_formats_are_unsupported_and_named(tmp_path, fmt, suffix):
    Image.fromarray(_gradient_rgb()).save(tmp_path / f"a{suffix}", format=fmt)
    with pytest.raises(ImageError, match=rf"unsupported image format {fmt}; supported: PNG, JPEG"):
        load_image(tmp_path / f"a{suffix}")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    huge = Image.new("1", (9000, 9000))  # 81 Mpx; a PNG of a few kB
    data = _save(huge, tmp_path / "bomb.png")
    assert len(data) < 200_000 and 9000 * 9000 > MAX_PIXELS
    with pytest.raises(ImageError, match=r"9000x9000 = 81,000,000 pixels is over the limit of 64,000,000"):
        load_image(tmp_path / "bomb.png")
    # Cut the data: the limit still fires first, so no pixel was ever decoded.
    with pytest.raises(ImageError, match="over the limit"):
        load_image(data[: len(data) // 3])


def test_pixel_limit_is_configurable():
    data = io.BytesIO()
    Image.new("RGB", (20, 20)).save(data, format="PNG")
    with pytest.raises(ImageError, match="400 pixels is over the limit of 100"):
        load_image(data.getvalue(), max_pixels=100)


def test_float_array_outside_unit_range_is_refused():
    with pytest.raises(ImageError, match=r"float values span \[0, 255\]; featuremaps expects \[0, 1\]"):
        load_image(np.array([[0.0, 255.0]]))


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((2, 2, 5), np.uint8), "expected shape"),
        (np.zeros((2, 2), np.int32), "unsupported dtype int32"),
        (np.array([[np.nan]]), "NaN"),
        (torch.zeros(1, 1, 2, 2), r"expected a tensor of shape \(H, W\) or \(C, H, W\)"),
    ],
)
def test_bad_arrays_and_tensors_are_refused(bad, message):
    with pytest.raises(ImageError, match=message):
        load_image(bad)


def test_unknown_sample_lists_the_names():
    with pytest.raises(ImageError, match=r"sample:nope: no such sample; available: cat, coffee"):
        load_image("sample:nope")


def test_unknown_mode_is_a_settings_error():
    with pytest.raises(SettingsError, match="mode must be one of auto, rgb, gray"):
        load_image("sample:cat", mode="bgr")  # type: ignore[arg-type]


def test_image_error_is_a_value_error_with_source_and_reason(tmp_path):
    with pytest.raises(ValueError) as caught:
        load_image(tmp_path / "x.png")
    assert isinstance(caught.value, featuremaps.ImageError)
    assert caught.value.source.endswith("x.png") and caught.value.reason == "file not found"


# --- shrinking on decode and memory ----------------------------------------------------------


@pytest.mark.parametrize("suffix, options", [(".png", {}), (".jpg", {"quality": 95}), (".bmp", {}),
                                             (".webp", {"lossless": True})])
def test_max_side_shrinks_in_pillow_and_matches_a_full_size_resize(tmp_path, suffix, options):
    y, x = np.mgrid[0:600, 0:900]
    stored = np.stack([x * 255 // 900, y * 255 // 600, np.full_like(x, 90)], axis=2).astype(np.uint8)
    _save(Image.fromarray(stored), tmp_path / f"g{suffix}", **options)
    small = load_image(tmp_path / f"g{suffix}", max_side=100)
    assert small.shape == (3, 67, 100)
    reference = torch.nn.functional.interpolate(load_image(tmp_path / f"g{suffix}")[None], size=(67, 100),
                                                mode="bilinear", antialias=True, align_corners=False)[0]
    assert float((small - reference).abs().mean()) < 0.01  # a smooth gradient: the same picture


def test_max_side_keeps_exif_orientation_and_small_images(tmp_path):
    stored = np.zeros((80, 160, 3), np.uint8)
    stored[:, :80] = (255, 0, 0)
    stored[:, 80:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    _save(Image.fromarray(stored), tmp_path / "o.jpg", exif=exif, quality=95)
    tensor = load_image(tmp_path / "o.jpg", max_side=40)
    assert tensor.shape == (3, 40, 20)  # upright: taller than wide
    assert tensor[0, :15].mean() > 0.9 and tensor[2, 25:].mean() > 0.9  # red on top, blue below
    assert featuremaps.images.image_size(tmp_path / "o.jpg") == (80, 160)  # (width, height) as viewed
    assert load_image(tmp_path / "o.jpg", max_side=1000).shape == (3, 160, 80)  # never enlarged


@pytest.mark.parametrize("mode", ["P", "1", "I;16", "LA", "CMYK"])
def test_max_side_works_for_every_pixel_mode(tmp_path, mode):
    image = Image.new("RGB", (300, 200), (200, 30, 30)).convert(mode)
    path = tmp_path / ("m.tiff" if mode in ("I;16", "CMYK") else "m.png")
    image.save(path)
    tensor = load_image(path, max_side=30)
    assert tensor.shape[1:] == (20, 30)
    # a flat colour (dithered in P and 1): the shrunk image keeps its average colour
    torch.testing.assert_close(tensor.mean(dim=(1, 2)), load_image(path).mean(dim=(1, 2)), atol=0.03, rtol=0)


def test_max_side_is_validated():
    with pytest.raises(SettingsError, match="max_side must be an int >= 1 or None; got 0"):
        load_image("sample:cat", max_side=0)


def _peak_mb(code: str) -> float:
    """Peak RSS (MB) a fresh interpreter adds while running ``code`` after importing featuremaps."""
    import subprocess
    import sys

    script = ("import resource, featuremaps.images as images\n"
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              f"{code}\n"
              "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)\n")
    return float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                                timeout=120).stdout.strip())


@pytest.mark.slow
def test_a_large_png_decodes_without_float64_copies(tmp_path):
    """8000 x 4000 RGB: Pillow's buffer is 128 MB (4 bytes/px), the float32 tensor 384 MB."""
    path = tmp_path / "big.png"
    Image.new("RGB", (8000, 4000), (30, 100, 200)).save(path)
    full = _peak_mb(f"x = images.load_image({str(path)!r})")
    small = _peak_mb(f"x = images.load_image({str(path)!r}, max_side=512)")
    assert full < 128 + 96 + 384 + 80  # Pillow + uint8 view + the float32 tensor; float64 would add 768+
    assert small < 128 + 40  # only Pillow's buffer: the float image is made at 512 px
