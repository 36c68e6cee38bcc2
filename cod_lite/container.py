"""A model's streams: what it puts into a `.cod` container (its identity, the image size, the
indices coded under its prior, metadata, colour side information) and what it checks when it
reads one back. `bitstream.py` is the byte layout; `streaminfo.py` inspects without a model."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from . import bitstream, colour
from .entropy.coding import decode_grid, encode_grid
from .entropy.prior import IndexPrior
from .errors import BitstreamError
from .image_io import pixel_limit
from .models.config import ModelConfig

SideInformation = Callable[[int], tuple[bytes, bytes]]  # payload bytes -> (CLRT, CGRD) chunk data


def write_stream(
    indices: np.ndarray, height: int, width: int, config: ModelConfig, identity: bytes, prior: IndexPrior | None,
    methods: tuple[int, ...] | None = None, metadata: Mapping[str, bytes] | None = None, side: SideInformation | None = None,
) -> bytes:
    """The stream of an image's index grid: entropy-coded with whichever of `methods` gives the
    smallest payload; `side(payload_bytes)` gives the colour side information (it may weigh
    its bytes against the payload's)."""
    method, payload = encode_grid(indices, config.codebook_bits, prior, methods)
    transform, grid = side(len(payload)) if side else (b"", b"")
    header = bitstream.StreamHeader(
        model_name=config.name,
        model_hash=identity,
        width=width,
        height=height,
        pad_mode=0,  # replicate: works for every size, 1x1 included
        method=method,
        payload=payload,
        metadata=dict(metadata or {}),
        colour=transform,
        colour_grid=grid,
    )
    return bitstream.serialize(header)


def read_stream(data: bytes, config: ModelConfig, identity: bytes, prior: IndexPrior | None) -> tuple[bitstream.StreamHeader, np.ndarray]:
    """(header, index grid) of a stream, after checking that it belongs to this model, that its
    size is within the pixel limit and that its side information is well-formed: all before any
    network work."""
    header = bitstream.parse(data)
    if header.model_hash != identity:
        raise BitstreamError(
            f"stream was made with model '{header.model_name}' (weights {header.model_hash.hex()}), "
            f"not with '{config.name}' (weights {identity.hex()})"
        )
    limit = pixel_limit()
    if header.width * header.height > limit:
        raise BitstreamError(f"stream claims a {header.width}x{header.height} image, above the pixel limit {limit}")
    colour.check(header.colour, header.colour_grid, header.height, header.width)
    ph, pw = config.padded_size(header.height, header.width)
    indices = decode_grid(header.method, header.payload, (ph // config.ds, pw // config.ds), config.codebook_bits, prior)
    return header, indices
