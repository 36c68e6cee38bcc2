"""A per-image colour correction sent as side information: the encoder, which has the original,
fits it on the decoded image, and the decoder applies it to its output.

A small generative decoder drifts in colour (a cast over the whole picture, saturated hues pulled
towards their neighbours); the indices cannot say so, but 24 bytes can. The transform is a gain
and an offset per channel, fitted by least squares on the 16x16 region means (what
`metrics.colour_error` compares), so texture is scaled with its region, never mixed across
channels: a full 3x3 mix removed more colour error but raised DISTS (docs/models.md). It is stored
as a general 3x4 matrix (docs/format.md, chunk `CLRT`), so a later encoder may send more.
"""

from __future__ import annotations

import struct

import numpy as np

from .errors import BitstreamError
from .metrics import COLOUR_BLOCK, box_downscale, colour_error

MATRIX_SCALE = 4096  # gains and mixing weights in units of 1/4096 (int16: -8 .. 8)
OFFSET_SCALE = 16  # offsets in units of 1/16 grey level (int16: -2048 .. 2048)
PAYLOAD = struct.Struct("<12h")
MIN_GAIN = 0.5  # the decoder pays 30 bytes for a transform only when it removes this much dE76


def fit(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """(3, 4) transform [gain diagonal | offset] taking the decoded region means to the original's."""
    a = box_downscale(decoded, COLOUR_BLOCK).reshape(-1, 3)
    b = box_downscale(original, COLOUR_BLOCK).reshape(-1, 3)
    matrix = np.zeros((3, 4))
    for channel in range(3):
        design = np.stack([a[:, channel], np.ones(len(a))], 1)
        (gain, offset), *_ = np.linalg.lstsq(design, b[:, channel], rcond=None)
        if not np.isfinite(gain) or not 0.5 <= gain <= 2.0:  # a flat channel: offset only
            gain, offset = 1.0, float(b[:, channel].mean() - a[:, channel].mean())
        matrix[channel, channel], matrix[channel, 3] = gain, offset
    return quantized(matrix)


def quantized(matrix: np.ndarray) -> np.ndarray:
    """The matrix exactly as `pack` stores it (so the encoder judges what the decoder will apply)."""
    return unpack(pack(matrix))


def pack(matrix: np.ndarray) -> bytes:
    values = np.concatenate([matrix[:, :3].ravel() * MATRIX_SCALE, matrix[:, 3] * OFFSET_SCALE])
    return PAYLOAD.pack(*np.clip(np.round(values), -32768, 32767).astype(int))


def unpack(data: bytes) -> np.ndarray:
    if len(data) != PAYLOAD.size:
        raise BitstreamError(f"malformed stream: colour transform of {len(data)} bytes (expected {PAYLOAD.size})")
    values = np.array(PAYLOAD.unpack(data), dtype=np.float64)
    return np.concatenate([values[:9].reshape(3, 3) / MATRIX_SCALE, values[9:, None] / OFFSET_SCALE], 1)


def apply(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> HxWx3 uint8: rgb' = M[:, :3] rgb + M[:, 3], rounded and clipped."""
    out = image.astype(np.float32) @ matrix[:, :3].T.astype(np.float32) + matrix[:, 3].astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def side_information(original: np.ndarray, decoded: np.ndarray) -> bytes:
    """The packed transform when it removes at least MIN_GAIN of colour error, else b"" (none sent)."""
    matrix = fit(original, decoded)
    gain = colour_error(original, decoded) - colour_error(original, apply(decoded, matrix))
    return pack(matrix) if gain >= MIN_GAIN else b""
