"""The Pillow plugin and the stream inspector, through plain Pillow calls and the public API."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import cod_lite
from cod_lite import bitstream
from cod_lite.errors import BitstreamError

from .test_api import photo


@pytest.fixture(scope="module")
def small_stream() -> bytes:
    return cod_lite.encode(photo(48, 80), "default", precision="fp32")


def test_open_decodes_what_the_api_decodes(small_stream, tmp_path):
    path = tmp_path / "x.cod"
    path.write_bytes(small_stream)
    with Image.open(path) as im:
        assert (im.format, im.size, im.mode) == ("COD", (80, 48), "RGB")
        assert im.info["cod_model"] == "cod-lite-s-0.125"
        pixels = np.asarray(im)
    np.testing.assert_array_equal(pixels, np.asarray(cod_lite.decode(small_stream)))


def test_save_encodes_with_the_chosen_model_and_opens_from_memory():
    image = Image.fromarray(photo(40, 56, seed=3))
    buf = io.BytesIO()
    image.save(buf, format="COD", model="cod-lite-s-0.03", precision="fp32")
    data = buf.getvalue()
    assert cod_lite.inspect(data).model == "cod-lite-s-0.03"
    assert data == cod_lite.encode(np.asarray(image), "cod-lite-s-0.03", precision="fp32")
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (56, 40) and np.asarray(im).shape == (40, 56, 3)


def test_extension_mime_and_magic_are_registered(small_stream, tmp_path):
    assert Image.registered_extensions()[".cod"] == "COD" and Image.MIME["COD"] == "image/x-cod-lite"
    odd = tmp_path / "no_extension.bin"  # found by its magic bytes, not its name
    odd.write_bytes(small_stream)
    with Image.open(odd) as im:
        assert im.format == "COD"
    Image.fromarray(photo(32, 32)).save(tmp_path / "saved.cod")  # the suffix picks the format
    assert (tmp_path / "saved.cod").read_bytes()[:4] == bitstream.MAGIC


def test_the_declared_size_meets_the_bomb_check_before_any_decoding():
    header = bitstream.StreamHeader("cod-lite-s-0.125", b"\0" * 8, 200_000, 100_000, 0, 0, b"tiny")
    bomb = bitstream.serialize(header)  # 40-odd bytes declaring 20 gigapixels
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            im = Image.open(io.BytesIO(bomb))  # the header alone is read: no memory for 20 GP
            assert im.size == (200_000, 100_000)
        finally:
            Image.MAX_IMAGE_PIXELS = old


def test_a_corrupted_stream_fails_with_the_reason(small_stream):
    broken = bytearray(small_stream)
    broken[-8] ^= 0xFF
    with pytest.raises(BitstreamError, match="CRC32"):
        Image.open(io.BytesIO(bytes(broken)))


def test_inspect_reads_the_header_without_the_model(small_stream):
    about = cod_lite.inspect(small_stream)
    header = bitstream.parse(small_stream)
    assert (about.width, about.height, about.bytes) == (80, 48, len(small_stream))
    assert about.payload_bytes == len(header.payload) and about.model_hash == header.model_hash.hex()
    assert about.bpp == pytest.approx(8 * len(small_stream) / (80 * 48))
    assert about.method in ("fixed-length", "static prior", "context prior") and about.model_installed
    foreign = bitstream.serialize(bitstream.StreamHeader("someone-elses", b"\1" * 8, 5, 5, 0, 0, b"x"))
    assert cod_lite.inspect(foreign).model_installed is False
    with pytest.raises(BitstreamError):
        cod_lite.inspect(b"CODL\x01")


def test_pillow_gets_oserrors_and_refuses_unknown_options(small_stream, tmp_path, isolated_home):
    """Pillow tools catch OSError: a damaged stream, a missing model, a bad save option all are;
    data that is no stream is Pillow's own UnidentifiedImageError."""
    broken = bytearray(small_stream)
    broken[-8] ^= 0xFF
    with pytest.raises(OSError, match="CRC32"):
        Image.open(io.BytesIO(bytes(broken)))
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(b"definitely not an image"))
    foreign = bitstream.serialize(bitstream.StreamHeader("someone-elses", b"\1" * 8, 32, 32, 0, 0, b"x" * 64))
    with pytest.raises(OSError, match="no cod-lite release has shipped") as caught:
        Image.open(io.BytesIO(foreign)).load()
    assert isinstance(caught.value, cod_lite.ImageFileError) and isinstance(caught.value.__cause__, cod_lite.ModelNotFoundError)
    assert "--model" not in str(caught.value) or "model=" in str(caught.value)  # Python words for Python callers
    image = Image.fromarray(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(OSError, match="unknown .cod save option 'qualty'"):
        image.save(tmp_path / "x.cod", qualty=50)
    with pytest.raises(OSError, match="give one of model=, bpp= and quality="):
        image.save(tmp_path / "x.cod", bpp=0.03, quality=10)
    with pytest.raises(OSError, match="quality must be 0-100"):
        image.save(tmp_path / "x.cod", quality=150)
    assert not (tmp_path / "x.cod").exists()


@pytest.mark.parametrize("option, expected", [({"bpp": 0.03}, "cod-lite-s-0.03"), ({"quality": 0}, "cod-lite-s-0.008"),
                                              ({"quality": 100}, "cod-lite-s-0.125"), ({"quality": 90}, "cod-lite-s-0.125"), ({"quality": 60}, "cod-lite-s-0.03")])
def test_save_maps_bpp_and_quality_to_the_bundled_models(option, expected):
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(buffer, format="COD", **option)
    assert cod_lite.inspect(buffer.getvalue()).model == expected
