"""What a `.cod` stream holds, without decoding it: the public inspector behind `codlite info`
and `codlite compress`'s summary line."""

from __future__ import annotations

from dataclasses import dataclass

from . import bitstream, zoo
from .zoo import registry
from .entropy.coding import METHOD_NAMES
from .errors import ModelNotFoundError
from .fileio import StreamSource, stream_bytes


@dataclass(frozen=True)
class StreamInfo:
    """The header of a stream (container v1 or v2), its rate, and whether its model is installed here."""

    model: str
    model_hash: str  # hex of the weights' sha256 prefix the stream carries
    width: int
    height: int
    bytes: int
    payload_bytes: int
    method: str  # entropy-coding method, by name
    model_installed: bool
    metadata: dict[str, int]  # metadata kind ("exif", "icc", "xmp") -> its bytes in the stream
    colour_bytes: int  # bytes of the encoder's colour corrections (cod_lite.colour) it carries; 0: none
    model_release: str | None = None  # the cod-lite release that shipped its weights (None: never shipped)
    model_current: bool = False  # its weights are a release's current bundled file (not superseded)

    @property
    def bpp(self) -> float:
        return bitstream.bits_per_pixel(self.bytes, self.width, self.height)


def inspect(data: StreamSource) -> StreamInfo:
    """Parse and check (CRC included) a stream (bytes, a path or a binary file object), without
    decoding it; a defect is a BitstreamError."""
    data = stream_bytes(data)
    header = bitstream.parse(data)
    entry = registry.lookup(header.model_hash)
    try:
        zoo.find_by_identity(header.model_name, header.model_hash)
        installed = True
    except ModelNotFoundError:
        installed = False
    return StreamInfo(
        model=header.model_name,
        model_hash=header.model_hash.hex(),
        width=header.width,
        height=header.height,
        bytes=len(data),
        payload_bytes=len(header.payload),
        method=METHOD_NAMES.get(header.method, f"method {header.method} (unknown to this version)"),
        model_installed=installed,
        metadata={kind: len(data) for kind, data in header.metadata.items()},
        colour_bytes=len(header.colour) + len(header.colour_grid),
        model_release=entry.release if entry else None,
        model_current=entry is not None and entry.replaced_by is None,
    )
