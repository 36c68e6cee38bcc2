"""EXIF, ICC and XMP carried in the container's version 2 chunks: written on request, restored on
decompress, orientation applied once; streams without metadata stay version 1."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms

from cod_lite import bitstream
from cod_lite.errors import BitstreamError, InputError
from cod_lite.image_io import metadata_kinds
from cod_lite_cli.main import cli

from .test_api import photo

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


@pytest.fixture
def tagged_jpeg(tmp_path):
    """A 48x80 JPEG stored sideways: EXIF orientation 6 (turn 90 degrees), a camera make, ICC, XMP."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0112] = "TestCam", 6
    path = tmp_path / "tagged.jpg"
    Image.fromarray(photo(80, 48)).save(path, exif=exif.tobytes(), icc_profile=ICC, xmp=XMP, quality=95)
    return path


def test_metadata_round_trips_through_the_api_with_orientation_applied_once(tagged_jpeg, parity_codec):
    data = parity_codec.encode(tagged_jpeg, metadata="all")
    header = bitstream.parse(data)
    assert data[4] == bitstream.VERSION_METADATA and set(header.metadata) == {"exif", "icc", "xmp"}
    image = parity_codec.decode(data)
    assert image.size == (80, 48)  # the pixels were turned by the EXIF orientation...
    exif = Image.Exif()
    exif.load(image.info["exif"])
    assert exif[0x0112] == 1 and exif[0x010F] == "TestCam"  # ...so the tag says: no further turn
    assert image.info["icc_profile"] == ICC and image.info["xmp"] == XMP
    plain = parity_codec.encode(tagged_jpeg, colour=False)  # metadata default: none
    assert plain[4] == bitstream.VERSION and bitstream.parse(plain).metadata == {}
    assert bitstream.parse(plain).payload == header.payload and len(plain) < len(data)


def test_chosen_kinds_only(tagged_jpeg, parity_codec):
    assert set(bitstream.parse(parity_codec.encode(tagged_jpeg, metadata="icc,xmp")).metadata) == {"icc", "xmp"}
    assert set(bitstream.parse(parity_codec.encode(tagged_jpeg, metadata=["exif"])).metadata) == {"exif"}
    assert bitstream.parse(parity_codec.encode(photo(32, 32), metadata="all")).metadata == {}  # arrays have none
    with pytest.raises(InputError, match="unknown metadata kind 'gps'"):
        metadata_kinds("exif,gps")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_cli_restores_metadata_into_each_format(tagged_jpeg, tmp_path, parity_weights, suffix):
    runner = CliRunner()
    stream = tmp_path / "s.cod"
    assert runner.invoke(cli, ["compress", str(tagged_jpeg), str(stream), "--model", parity_weights, "--metadata", "all"]).exit_code == 0
    info = runner.invoke(cli, ["info", str(stream)])
    assert "icc (" in info.stdout and "xmp (" in info.stdout
    out = tmp_path / f"back{suffix}"
    result = runner.invoke(cli, ["decompress", str(stream), str(out), "--model", parity_weights])
    assert result.exit_code == 0, result.output
    with Image.open(out) as back:
        assert back.size == (80, 48) and back.getexif()[0x010F] == "TestCam"
        assert back.info.get("icc_profile") == ICC
        if suffix != ".tif":
            assert back.info.get("xmp") == XMP
    stripped = tmp_path / f"stripped{suffix}"
    runner.invoke(cli, ["decompress", str(stream), str(stripped), "--model", parity_weights, "--metadata", "none"])
    with Image.open(stripped) as back:
        assert not back.info.get("icc_profile") and 0x010F not in back.getexif()


def test_pillow_plugin_reads_and_writes_metadata(tagged_jpeg):
    with Image.open(tagged_jpeg) as source:
        buf = io.BytesIO()
        source.save(buf, format="COD", metadata="icc", precision="fp32")
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert im.info["icc_profile"] == ICC and "exif" not in im.info


def test_malformed_chunks_are_bitstream_errors():
    base = bitstream.StreamHeader("m", b"\0" * 8, 5, 5, 0, 0, b"p", {"icc": b"profile"})
    data = bitstream.serialize(base)
    assert bitstream.parse(data).metadata == {"icc": b"profile"}

    def recrc(body: bytes) -> bytes:
        import struct
        import zlib

        return body + struct.pack("<I", zlib.crc32(body))

    body = data[:-4]
    at = body.index(b"ICCP")
    for bad, message in [
        (body[:at] + b"GPS!" + body[at + 4 :], "unknown metadata chunk"),
        (body[: at - 1] + b"\x00" + body[at:], "0 metadata chunks"),
        (body[: at - 1] + b"\x02" + body[at:] + body[at:], "repeated"),
        (body[: at - 1] + b"\x01" + b"ICCP\x00", "empty"),
        (body[:-3], "truncated"),
    ]:
        with pytest.raises(BitstreamError, match=message):
            bitstream.parse(recrc(bad))
    with pytest.raises(ValueError, match="unknown metadata kind"):
        bitstream.serialize(bitstream.StreamHeader("m", b"\0" * 8, 5, 5, 0, 0, b"p", {"gps": b"x"}))
