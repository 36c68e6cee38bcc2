"""load_image / save_image: every input mode ends as HxWx3 uint8 RGB, and every bad input says why."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cod_lite.errors import InputError, OutputError
from cod_lite.image_io import DEFAULT_MAX_PIXELS, load_image, pixel_limit, save_image

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def _png(width: int, height: int, depth: int, colour_type: int, raw: bytes) -> bytes:
    """A minimal PNG built by hand, for what Pillow will not write (16-bit RGB, lying headers)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _saved(tmp_path: Path, image: Image.Image, name: str = "in.png", **options) -> Path:
    path = tmp_path / name
    image.save(path, **options)
    return path


def _check(pixels: np.ndarray, shape: tuple[int, int]) -> None:
    assert pixels.shape == (*shape, 3)
    assert pixels.dtype == np.uint8
    assert pixels.flags.c_contiguous


# -- modes ------------------------------------------------------------------------------------


def test_rgb_file_round_trips_exactly(tmp_path):
    pixels = load_image(_saved(tmp_path, Image.fromarray(RGB)))
    _check(pixels, (5, 7))
    np.testing.assert_array_equal(pixels, RGB)


def test_grey_l_is_replicated(tmp_path):
    grey = RGB[:, :, 0]
    pixels = load_image(_saved(tmp_path, Image.fromarray(grey)))
    np.testing.assert_array_equal(pixels, np.repeat(grey[:, :, None], 3, axis=2))


def test_bilevel_is_black_and_white(tmp_path):
    image = Image.fromarray(RGB[:, :, 0] > 127).convert("1")
    pixels = load_image(_saved(tmp_path, image))
    np.testing.assert_array_equal(pixels[:, :, 1], np.where(RGB[:, :, 0] > 127, 255, 0))


def test_la_drops_alpha_with_warning(tmp_path):
    image = Image.merge("LA", [Image.fromarray(RGB[:, :, 0]), Image.fromarray(RGB[:, :, 1])])
    with pytest.warns(UserWarning, match="alpha channel; it is discarded"):
        pixels = load_image(_saved(tmp_path, image))
    np.testing.assert_array_equal(pixels[:, :, 2], RGB[:, :, 0])


def test_rgba_drops_alpha_without_compositing(tmp_path):
    alpha = np.zeros((5, 7, 1), np.uint8)  # fully transparent: compositing would change every pixel
    with pytest.warns(UserWarning, match="alpha"):
        pixels = load_image(_saved(tmp_path, Image.fromarray(np.concatenate([RGB, alpha], axis=2))))
    np.testing.assert_array_equal(pixels, RGB)


def _palette_image() -> Image.Image:
    image = Image.fromarray((np.arange(35, dtype=np.uint8) % 3).reshape(5, 7), mode="L").convert("P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    return image


def test_palette_is_expanded(tmp_path):
    pixels = load_image(_saved(tmp_path, _palette_image()))
    assert tuple(pixels[0, 0]) == (255, 0, 0) and tuple(pixels[0, 1]) == (0, 255, 0)


@pytest.mark.parametrize("name", ["in.png", "in.gif"])
def test_palette_with_transparency_warns_and_keeps_colours(tmp_path, name):
    path = _saved(tmp_path, _palette_image(), name, transparency=1)
    with Image.open(path) as image:
        assert image.info.get("transparency") == 1
    with pytest.warns(UserWarning, match="alpha"):
        pixels = load_image(path)
    assert tuple(pixels[0, 1]) == (0, 255, 0)  # the transparent entry keeps its colour


def test_premultiplied_la_drops_alpha():
    image = Image.merge("LA", [Image.fromarray(RGB[:, :, 0]), Image.new("L", (7, 5), 255)]).convert("La")
    with pytest.warns(UserWarning, match="alpha"):
        np.testing.assert_array_equal(load_image(image)[:, :, 1], RGB[:, :, 0])


def test_cmyk_is_converted(tmp_path):
    image = Image.new("CMYK", (3, 2), (0, 255, 255, 0))  # full magenta + yellow = red
    pixels = load_image(_saved(tmp_path, image, "in.tif"))
    assert np.all(pixels == np.array([255, 0, 0], np.uint8))


@pytest.mark.parametrize("mode", ["YCbCr", "LAB", "HSV"])
def test_other_colour_spaces_follow_pillow(mode):
    image = Image.fromarray(RGB).convert(mode) if mode != "LAB" else Image.new("LAB", (7, 5), (128, 128, 128))
    np.testing.assert_array_equal(load_image(image), np.asarray(image.convert("RGB")))


def test_i16_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 255, 256, 0x1234], [0x8000, 0xABCD, 0xFF00, 0xFFFF]], np.uint16)
    path = _saved(tmp_path, Image.fromarray(values))
    with Image.open(path) as image:
        assert image.mode == "I;16"
    pixels = load_image(path)
    np.testing.assert_array_equal(pixels[:, :, 0], values >> 8)
    np.testing.assert_array_equal(pixels[:, :, 2], values >> 8)


def test_16_bit_pgm_opened_as_i_is_scaled(tmp_path):
    values = np.array([[0x1234, 0xFFFF, 0x00FF]], ">u2")
    path = tmp_path / "in.pgm"
    path.write_bytes(b"P5 3 1 65535\n" + values.tobytes())
    with Image.open(path) as image:
        assert image.mode == "I"
    np.testing.assert_array_equal(load_image(path)[0, :, 1], [0x12, 0xFF, 0x00])


def test_i_and_f_without_a_16_bit_source_follow_pillow():
    values = np.array([[-5, 0, 100, 255, 300]])
    for image in (Image.fromarray(values.astype(np.int32)), Image.fromarray(values.astype(np.float32))):
        np.testing.assert_array_equal(load_image(image)[0, :, 0], [0, 0, 100, 255, 255])


def test_16_bit_rgb_png_keeps_the_high_byte(tmp_path):
    values = np.array([[[0x1234, 0xABCD, 0xFFFF], [0x00FF, 0x0100, 0x8000]]], ">u2")
    path = tmp_path / "rgb16.png"
    path.write_bytes(_png(2, 1, 16, 2, b"\x00" + values[0].tobytes()))
    np.testing.assert_array_equal(load_image(path), values >> 8)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((16, 32, 3), np.uint8)
    pixels[:8, :8] = 255  # a white block top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a quarter turn clockwise
    path = _saved(tmp_path, Image.fromarray(pixels), "in.jpg", exif=exif, quality=95)
    loaded = load_image(path)
    _check(loaded, (32, 16))
    assert loaded[:8, 8:].min() > 200  # the block is now top-right
    assert loaded[:8, :8].max() < 50


def test_first_frame_of_animation(tmp_path):
    frames = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with Image.open(path) as image:
        assert image.n_frames == 2
    assert tuple(load_image(path)[0, 0]) == (255, 0, 0)


# -- numpy and PIL inputs -----------------------------------------------------------------------


def test_rgb_array_is_returned_as_is():
    assert load_image(RGB) is RGB


def test_non_contiguous_array_becomes_contiguous():
    view = RGB[:, ::2]
    pixels = load_image(view)
    assert pixels.flags.c_contiguous
    np.testing.assert_array_equal(pixels, view)


def test_grey_and_rgba_arrays():
    np.testing.assert_array_equal(load_image(RGB[:, :, 1])[:, :, 2], RGB[:, :, 1])
    with pytest.warns(UserWarning, match="alpha"):
        pixels = load_image(np.concatenate([RGB, RGB[:, :, :1]], axis=2))
    np.testing.assert_array_equal(pixels, RGB)


@pytest.mark.parametrize(
    "array",
    [RGB.astype(np.float32), RGB.astype(np.uint16), RGB[:, :, :2], RGB[None], np.zeros(5, np.uint8), RGB.astype(bool)],
)
def test_bad_arrays_name_what_is_expected(array):
    with pytest.raises(InputError, match=r"expected a uint8 array of shape HxWx3 .* got shape"):
        load_image(array)


def test_pil_image_input():
    np.testing.assert_array_equal(load_image(Image.fromarray(RGB)), RGB)


def test_image_file_bytes_decode_and_damaged_bytes_are_refused():
    buffer = io.BytesIO()
    Image.fromarray(RGB).save(buffer, format="PNG")
    np.testing.assert_array_equal(load_image(buffer.getvalue()), RGB)
    with pytest.raises(InputError, match="image data"):
        load_image(b"\x89PNG")


def test_other_types_are_refused():
    with pytest.raises(InputError, match="got int"):
        load_image(42)


# -- errors -----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "missing.png")


def test_folder(tmp_path):
    with pytest.raises(InputError, match="it is a folder"):
        load_image(tmp_path)


def test_text_file(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("hello")
    with pytest.raises(InputError, match=r"cannot read image '.*x\.txt': not a recognised image format$"):
        load_image(path)


@pytest.mark.parametrize("keep", [0.5, 20 / 200])
def test_truncated_png(tmp_path, keep):
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
    data = buffer.getvalue()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: max(20, int(len(data) * keep))])
    with pytest.raises(InputError, match="cannot read image .*truncated"):
        load_image(path)


def test_empty_inputs():
    with pytest.raises(InputError, match=r"is empty \(5x0\)"):
        load_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(InputError, match=r"is empty \(0x5\)"):
        load_image(Image.new("RGB", (0, 5)))


def test_over_limit_by_argument(tmp_path):
    path = _saved(tmp_path, Image.new("RGB", (4, 4)))
    with pytest.raises(InputError, match=r"is 4x4 = 16 pixels, above the limit of 10 pixels; raise it with max_pixels="):
        load_image(path, max_pixels=10)
    assert load_image(path, max_pixels=16).shape == (4, 4, 3)


def test_over_limit_by_environment_and_argument_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("CODLITE_MAX_PIXELS", "10")
    assert pixel_limit() == 10
    with pytest.raises(InputError, match="CODLITE_MAX_PIXELS"):
        load_image(np.zeros((4, 4, 3), np.uint8))
    assert load_image(np.zeros((4, 4, 3), np.uint8), max_pixels=100).shape == (4, 4, 3)
    monkeypatch.setenv("CODLITE_MAX_PIXELS", "lots")
    with pytest.raises(InputError, match="CODLITE_MAX_PIXELS must be a positive integer"):
        load_image(RGB)


def test_default_limit(monkeypatch):
    monkeypatch.delenv("CODLITE_MAX_PIXELS", raising=False)
    assert pixel_limit() == DEFAULT_MAX_PIXELS == 100_000_000
    with pytest.raises(InputError, match="positive integer"):
        pixel_limit(0)


def test_huge_header_is_refused_before_decoding(tmp_path):
    # 30000x30000 RGB claimed, 1 byte of data: decoding would fail or allocate 2.7 GB.
    path = tmp_path / "bomb.png"
    path.write_bytes(_png(30000, 30000, 8, 2, b"\x00"))
    message = "image '.*bomb.png' is 30000x30000 = 900.0 MP, above the limit of 100.0 MP; raise it with max_pixels= or CODLITE_MAX_PIXELS"
    with pytest.raises(InputError, match=message):
        load_image(path)


def test_pillow_global_limit_is_not_ours(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4)  # Pillow would call a 5x7 image a bomb
    path = _saved(tmp_path, Image.fromarray(RGB))
    np.testing.assert_array_equal(load_image(path), RGB)
    assert Image.MAX_IMAGE_PIXELS == 4


# -- save_image -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.png", "out.bmp", "out.tif", "out.TIFF"])
def test_lossless_round_trip(tmp_path, name):
    path = save_image(RGB, tmp_path / name)
    assert path == tmp_path / name
    np.testing.assert_array_equal(load_image(path), RGB)


def test_jpeg_round_trip_is_close(tmp_path):
    smooth = np.broadcast_to(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (32, 32, 3)).copy()
    path = save_image(smooth, tmp_path / "out.jpg")
    with Image.open(path) as image:
        assert image.format == "JPEG"
    assert np.abs(load_image(path).astype(int) - smooth).max() <= 4


@pytest.mark.parametrize("suffix, fmt", [(".jpg", "JPEG"), (".webp", "WEBP"), (".avif", "AVIF"), (".jxl", "JXL")])
def test_lossy_outputs_take_a_quality_default_90(tmp_path, suffix, fmt):
    """As cwebp/avifenc: lossy at quality 90 unless told (a decoded stream is no lossless master)."""
    rng = np.random.default_rng(5)
    textured = np.clip(128 + rng.normal(0, 40, (96, 128, 3)), 0, 255).astype(np.uint8)
    sizes = {}
    for quality in (None, 30, 95):
        path = save_image(textured, tmp_path / f"q{quality}{suffix}", quality=quality)
        with Image.open(path) as image:
            assert image.format == fmt
        sizes[quality] = path.stat().st_size
    assert sizes[30] < sizes[None] < sizes[95]  # 90 by default, between the two
    error = {q: np.abs(load_image(tmp_path / f"q{q}{suffix}").astype(int) - textured).mean() for q in (30, 95)}
    assert error[95] < error[30]


def test_quality_is_refused_where_it_means_nothing(tmp_path):
    with pytest.raises(InputError, match="quality applies to lossy outputs"):
        save_image(RGB, tmp_path / "out.png", quality=80)
    with pytest.raises(InputError, match="quality must be 0-100"):
        save_image(RGB, tmp_path / "out.jpg", quality=101)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_unknown_suffix_and_bad_arrays(tmp_path):
    with pytest.raises(InputError, match=r"unknown suffix '\.xyz'; use one of \.png, \.jpg"):
        save_image(RGB, tmp_path / "out.xyz")
    with pytest.raises(InputError, match="expected an HxWx3 uint8 array"):
        save_image(RGB[:, :, 0], tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


def test_save_does_not_overwrite_unless_asked(tmp_path):
    path = save_image(RGB, tmp_path / "out.png")
    with pytest.raises(OutputError, match="already exists"):
        save_image(RGB[::-1], path)
    np.testing.assert_array_equal(load_image(path), RGB)
    save_image(np.ascontiguousarray(RGB[::-1]), path, overwrite=True)
    np.testing.assert_array_equal(load_image(path), RGB[::-1])
