"""The cod-lite container (docs/format.md) and the authors' reference `.cod` layout.

The container names the model and its weights so a stream is never decoded with other weights,
and ends in a CRC32 so corruption is reported instead of decoded into a wrong image. Version 2
adds metadata chunks (EXIF, ICC profile, XMP) after the payload; a stream without metadata is
written as version 1, byte for byte what earlier releases wrote.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import BitstreamError

MAGIC = b"CODL"
VERSION = 1  # no metadata
VERSION_METADATA = 2  # chunks after the payload: metadata, side information
# metadata kind -> chunk tag; the kinds are also the names of --metadata and of Pillow's info keys' sources
CHUNK_TAGS = {"exif": b"EXIF", "icc": b"ICCP", "xmp": b"XMP "}
COLOUR_TAG = b"CLRT"  # the encoder's colour transform (cod_lite.colour), applied by the decoder
GRID_TAG = b"CGRD"  # the encoder's grid of colour offsets (cod_lite.colour), applied after the transform
SIDE_TAGS = {"colour": COLOUR_TAG, "colour_grid": GRID_TAG}  # header field -> chunk tag
MAX_CHUNKS = len(CHUNK_TAGS) + len(SIDE_TAGS)
HASH_BYTES = 8
MAX_NAME_BYTES = 255  # the name's length is one byte
MAX_DIMENSION = 2**31 - 1
PAD_MODES = (0, 1)  # 0 = replicate, 1 = reflect
MAX_VARINT_BYTES = 5
CRC_BYTES = 4
REFERENCE_MAX_DIMENSION = 65535


@dataclass(frozen=True)
class StreamHeader:
    """Everything a v1 stream holds: model identity, image size, padding, coding method, payload."""

    model_name: str
    model_hash: bytes
    width: int
    height: int
    pad_mode: int
    method: int
    payload: bytes
    metadata: Mapping[str, bytes] = field(default_factory=dict)  # kind ("exif", "icc", "xmp") -> bytes
    colour: bytes = b""  # packed colour transform, or empty: none
    colour_grid: bytes = b""  # packed grid of colour offsets, or empty: none


def _header_problem(name: bytes, header: StreamHeader) -> str | None:
    """Why a header cannot be stored, or None; shared so serialize and parse accept the same set."""
    if not 1 <= len(name) <= MAX_NAME_BYTES:
        return f"model name must be 1..{MAX_NAME_BYTES} UTF-8 bytes, got {len(name)}"
    if len(header.model_hash) != HASH_BYTES:
        return f"model hash must be {HASH_BYTES} bytes, got {len(header.model_hash)}"
    for side in ("width", "height"):
        value = getattr(header, side)
        if not 1 <= value <= MAX_DIMENSION:
            return f"{side} must be in 1..{MAX_DIMENSION}, got {value}"
    if not 0 <= header.method <= 255:
        return f"method must be in 0..255, got {header.method}"
    if header.pad_mode not in PAD_MODES:
        return f"unknown pad mode {header.pad_mode} (known: 0 = replicate, 1 = reflect)"
    unknown = sorted(set(header.metadata) - set(CHUNK_TAGS))
    if unknown:
        return f"unknown metadata kind {unknown[0]!r} (known: {', '.join(CHUNK_TAGS)})"
    return None


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def bits_per_pixel(num_bytes: int, width: int, height: int) -> float:
    """The rate of a stream (or any file) of `num_bytes` for a width x height image."""
    return 8 * num_bytes / (width * height)


def serialize(header: StreamHeader) -> bytes:
    """Header + payload + CRC32 as a v1 stream; ValueError for a header that no decoder would accept."""
    name = header.model_name.encode("utf-8")
    problem = _header_problem(name, header)
    if problem:
        raise ValueError(problem)
    tagged = [(CHUNK_TAGS[kind], data) for kind, data in header.metadata.items()]
    tagged += [(tag, getattr(header, kind)) for kind, tag in SIDE_TAGS.items()]
    chunks = [tag + _varint(len(data)) + bytes(data) for tag, data in tagged if data]
    version = VERSION_METADATA if chunks else VERSION
    body = b"".join(
        [
            MAGIC,
            bytes([version, header.method, header.pad_mode, len(name)]),
            name,
            header.model_hash,
            _varint(header.width),
            _varint(header.height),
            _varint(len(header.payload)),
            header.payload,
            bytes([len(chunks)]) + b"".join(chunks) if chunks else b"",
        ]
    )
    return body + struct.pack("<I", zlib.crc32(body))


class _Reader:
    """Bounds-checked cursor, so every short read becomes a 'truncated stream' BitstreamError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if len(self.data) - self.pos < n:
            raise BitstreamError(
                f"truncated stream: {what} needs {n} bytes at offset {self.pos}, got {len(self.data) - self.pos}"
            )
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def varint(self, what: str) -> int:
        """Unsigned LEB128, canonical and at most MAX_VARINT_BYTES long."""
        value = 0
        for i in range(MAX_VARINT_BYTES):
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if byte == 0 and i > 0:
                    raise BitstreamError(f"malformed stream: {what} varint has a non-canonical trailing zero byte")
                return value
        raise BitstreamError(f"malformed stream: {what} varint is longer than {MAX_VARINT_BYTES} bytes")


def parse(data: bytes) -> StreamHeader:
    """Check and split a v1 stream; any defect, whatever the input bytes, is a BitstreamError."""
    if not data:
        raise BitstreamError("empty stream")
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise BitstreamError("not a cod-lite stream (bad magic bytes)")
    r = _Reader(data)
    r.take(len(MAGIC), "magic")
    version = r.take(1, "version")[0]
    if version not in (VERSION, VERSION_METADATA):
        raise BitstreamError(f"unsupported stream version {version}; this cod-lite reads versions {VERSION} and {VERSION_METADATA}")
    method, pad_mode, name_len = r.take(3, "header")
    name = r.take(name_len, "model name")
    model_hash = r.take(HASH_BYTES, "model hash")
    width = r.varint("width")
    height = r.varint("height")
    payload_len = r.varint("payload length")
    payload = r.take(payload_len, "payload")
    chunks = _read_chunks(r) if version == VERSION_METADATA else []
    crc = r.take(CRC_BYTES, "CRC32")
    if struct.unpack("<I", crc)[0] != zlib.crc32(data[: r.pos - CRC_BYTES]):
        raise BitstreamError("corrupted stream: CRC32 mismatch")
    if r.pos != len(data):
        raise BitstreamError(f"malformed stream: {len(data) - r.pos} trailing bytes after the CRC32")
    try:
        model_name = bytes(name).decode("utf-8")
    except UnicodeDecodeError:
        raise BitstreamError("malformed stream: model name is not valid UTF-8") from None
    metadata = _metadata(chunks)
    side = {kind: metadata.pop(kind, b"") for kind in SIDE_TAGS}
    header = StreamHeader(model_name, bytes(model_hash), width, height, pad_mode, method, bytes(payload), metadata, **side)
    problem = _header_problem(name, header)
    if problem:
        raise BitstreamError(f"malformed stream: {problem}")
    return header


def _read_chunks(r: _Reader) -> list[tuple[bytes, bytes]]:
    """The chunk list of a version 2 stream: a count (1..MAX_CHUNKS), then tag, varint length, data."""
    count = r.take(1, "chunk count")[0]
    if not 1 <= count <= MAX_CHUNKS:
        raise BitstreamError(f"malformed stream: {count} metadata chunks (a version 2 stream has 1..{MAX_CHUNKS})")
    return [(bytes(r.take(4, "chunk tag")), bytes(r.take(r.varint("chunk length"), "chunk data"))) for _ in range(count)]


def _metadata(chunks: list[tuple[bytes, bytes]]) -> dict[str, bytes]:
    """Chunks (read after the CRC check) as kind -> bytes (side information under its header
    field's name): known tags only, each once, none empty."""
    kinds = {tag: kind for kind, tag in (CHUNK_TAGS | SIDE_TAGS).items()}
    found: dict[str, bytes] = {}
    for tag, data in chunks:
        kind = kinds.get(tag)
        if kind is None:
            raise BitstreamError(f"malformed stream: unknown metadata chunk {tag!r}")
        if kind in found or not data:
            raise BitstreamError(f"malformed stream: metadata chunk {tag!r} {'repeated' if kind in found else 'empty'}")
        found[kind] = data
    return found


def read_reference_cod(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, packed indices) from the authors' layout: uint16 LE width, uint16 LE height, payload."""
    if len(data) < 4:
        raise BitstreamError(f"truncated stream: reference .cod header needs 4 bytes, got {len(data)}")
    width, height = struct.unpack("<HH", data[:4])
    if width == 0 or height == 0:
        raise BitstreamError(f"malformed reference .cod: size {width}x{height} is empty")
    return width, height, bytes(data[4:])


def write_reference_cod(width: int, height: int, payload: bytes) -> bytes:
    """The authors' layout, for exchanging streams with the reference code (no model identity, no check)."""
    for side, value in (("width", width), ("height", height)):
        if not 1 <= value <= REFERENCE_MAX_DIMENSION:
            raise ValueError(f"reference .cod {side} must be in 1..{REFERENCE_MAX_DIMENSION}, got {value}")
    return struct.pack("<HH", width, height) + bytes(payload)
