"""Index packing (method 0) and the v1 container: exact layouts, round trips, and hostile input."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from cod_lite.bitstream import StreamHeader, parse, read_reference_cod, serialize, write_reference_cod
from cod_lite.entropy.packing import pack_indices, unpack_indices
from cod_lite.errors import BitstreamError

HASH = bytes(range(1, 9))


def header(width: int = 5, height: int = 7, payload: bytes = b"\x12\x34\x56", **kw) -> StreamHeader:
    fields = dict(model_name="parity_A", model_hash=HASH, width=width, height=height, pad_mode=0, method=0)
    fields.update(kw)
    return StreamHeader(payload=payload, **fields)


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def raw_stream(
    *, version: int = 1, pad_mode: int = 0, name: bytes = b"m", width: bytes = b"\x05", height: bytes = b"\x07"
) -> bytes:
    """A v1 stream built byte by byte with a valid CRC, to reach the checks behind the CRC."""
    return with_crc(b"CODL" + bytes([version, 0, pad_mode, len(name)]) + name + HASH + width + height + b"\x01\xaa")


# -- packing --------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 4, 8, 11, 16])
@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_pack_round_trip(bits, n):
    rng = np.random.default_rng(bits * 1000 + n)
    for values in (rng.integers(0, 2**bits, n), np.full(n, 2**bits - 1), np.zeros(n, dtype=np.int64)):
        data = pack_indices(values, bits)
        assert len(data) == (n * bits + 7) // 8
        out = unpack_indices(data, bits, n)
        assert out.dtype == np.int64
        np.testing.assert_array_equal(out, values)


def test_pack_reference_example():
    assert pack_indices(np.array([3, 3, 6, 7]), 4) == bytes([0x33, 0x67])


def test_pack_msb_first_with_zero_padding():
    # 11-bit 0b10000000001 then 0b00000000011: bits concatenate, last byte padded with zeros.
    assert pack_indices(np.array([0x401, 0x003]), 11) == bytes([0b10000000, 0b00100000, 0b00001100])
    assert pack_indices(np.array([1]), 1) == b"\x80"


def test_pack_large_input_is_vectorised():
    values = np.random.default_rng(0).integers(0, 2**11, 100_000)
    np.testing.assert_array_equal(unpack_indices(pack_indices(values, 11), 11, values.size), values)


@pytest.mark.parametrize("values,bits", [([-1], 8), ([256], 8), ([2], 1), ([65536], 16)])
def test_pack_rejects_out_of_range(values, bits):
    with pytest.raises(ValueError, match="must be in"):
        pack_indices(np.array(values), bits)


@pytest.mark.parametrize("bits", [0, 17])
def test_pack_rejects_bad_width(bits):
    with pytest.raises(ValueError, match="bits"):
        pack_indices(np.array([0]), bits)


def test_pack_rejects_non_integers():
    with pytest.raises(ValueError, match="integers"):
        pack_indices(np.array([1.0]), 8)


@pytest.mark.parametrize("length", [0, 4, 6, 100])
def test_unpack_requires_exact_length(length):
    # 4 indices of 11 bits need exactly 6 bytes.
    data = bytes(length)
    if length == 6:
        assert unpack_indices(data, 11, 4).tolist() == [0, 0, 0, 0]
    else:
        with pytest.raises(BitstreamError, match="need exactly 6"):
            unpack_indices(data, 11, 4)


# -- container ------------------------------------------------------------------------------


@pytest.mark.parametrize("width,height", [(1, 1), (65536, 3), (2**31 - 1, 1), (1, 2**31 - 1)])
def test_container_round_trip(width, height):
    h = header(width, height, payload=bytes(range(200)), pad_mode=1, method=7, model_name="modèle-ds16")
    assert parse(serialize(h)) == h


def test_container_layout():
    data = serialize(header(300, 2, payload=b"\xab"))
    body = b"CODL\x01\x00\x00\x08parity_A" + HASH + b"\xac\x02\x02\x01\xab"
    assert data == with_crc(body)


def test_empty_payload_round_trip():
    assert parse(serialize(header(payload=b""))).payload == b""


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(width=0), "width"),
        (dict(height=2**31), "height"),
        (dict(model_name=""), "name"),
        (dict(model_name="x" * 256), "name"),
        (dict(model_hash=b"short"), "hash"),
        (dict(pad_mode=2), "pad mode"),
        (dict(method=256), "method"),
    ],
)
def test_serialize_rejects_bad_headers(kw, match):
    with pytest.raises(ValueError, match=match):
        serialize(header(**kw))


def test_empty_stream():
    with pytest.raises(BitstreamError, match="empty stream"):
        parse(b"")


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + bytes(40), b"X", b"COD!"])
def test_wrong_magic(data):
    with pytest.raises(BitstreamError, match="not a cod-lite stream"):
        parse(data)


def test_unsupported_version():
    with pytest.raises(BitstreamError, match="version 3.*versions 1 and 2"):
        parse(raw_stream(version=3))


def test_truncations_are_rejected():
    data = serialize(header())
    for n in range(1, len(data)):
        with pytest.raises(BitstreamError, match="truncated stream"):
            parse(data[:n])


def test_bit_flips_are_rejected():
    data = serialize(header())
    for i in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[i // 8] ^= 1 << (i % 8)
        with pytest.raises(BitstreamError):
            parse(bytes(flipped))


def test_crc_mismatch():
    data = bytearray(serialize(header()))
    data[-6] ^= 0xFF  # inside the payload
    with pytest.raises(BitstreamError, match="CRC32 mismatch"):
        parse(bytes(data))


def test_trailing_bytes():
    with pytest.raises(BitstreamError, match="trailing"):
        parse(serialize(header()) + b"\x00")


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(pad_mode=9), "pad mode 9"),
        (dict(width=b"\x00"), "width"),
        (dict(height=b"\x80\x80\x80\x80\x08"), "height"),  # 2**31, over the limit
        (dict(width=b"\x85\x00"), "non-canonical"),
        (dict(width=b"\x80\x80\x80\x80\x80\x01"), "longer than 5"),
        (dict(name=b""), "name"),
        (dict(name=b"\xff\xfe"), "UTF-8"),
    ],
)
def test_malformed_fields_behind_valid_crc(kw, match):
    with pytest.raises(BitstreamError, match=match):
        parse(raw_stream(**kw))


def test_unknown_method_is_not_a_parse_error():
    assert parse(serialize(header(method=255))).method == 255


def test_random_bytes_only_raise_bitstream_error():
    rng = np.random.default_rng(1234)
    prefix = b"CODL\x01"
    for i in range(1000):
        data = rng.integers(0, 256, int(rng.integers(0, 80)), dtype=np.uint8).tobytes()
        for candidate in (data, prefix + data):
            with pytest.raises(BitstreamError):
                parse(candidate)


# -- reference .cod ---------------------------------------------------------------------------


def test_reference_cod_round_trip():
    payload = pack_indices(np.array([3, 3, 6, 7]), 4)
    data = write_reference_cod(640, 480, payload)
    assert data == b"\x80\x02\xe0\x01\x33\x67"
    assert read_reference_cod(data) == (640, 480, payload)
    assert read_reference_cod(write_reference_cod(65535, 1, b"")) == (65535, 1, b"")


@pytest.mark.parametrize("width,height", [(65536, 1), (1, 65536), (0, 5)])
def test_reference_cod_size_limits(width, height):
    with pytest.raises(ValueError, match="65535"):
        write_reference_cod(width, height, b"")


@pytest.mark.parametrize("data,match", [(b"", "truncated"), (b"\x01\x00\x00", "truncated"), (b"\x00\x00\x01\x00", "empty")])
def test_reference_cod_rejects_bad_headers(data, match):
    with pytest.raises(BitstreamError, match=match):
        read_reference_cod(data)
