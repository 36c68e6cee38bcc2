"""Colour corrections sent as side information: the encoder, which has the original, fits them on
the decoded image, and the decoder applies them to its output.

A small generative decoder drifts in colour (a cast over the whole picture, saturated hues pulled
towards their neighbours); the indices cannot say so, but a few bytes can. Two corrections, each
sent only when it pays:
- a transform of the whole picture (chunk `CLRT`, 24 bytes): a gain and an offset per channel,
  fitted by least squares on the 16x16 region means (what `metrics.colour_error` compares), so
  texture is scaled with its region, never mixed across channels (a full 3x3 mix removed more
  colour error but raised DISTS, docs/models.md); stored as a general 3x4 matrix;
- a coarse grid of offsets (chunk `CGRD`): one RGB offset per cell of 16..256 px, bilinearly
  interpolated between cell centres, so it moves regions' colours and leaves texture alone.
  The encoder picks the cell size and step that minimise colour error + GRID_RATE_COST per
  percent of the payload's bytes, at most GRID_MAX_SHARE of them.
docs/format.md specifies both chunks.
"""

from __future__ import annotations

import struct

import numpy as np

from .errors import BitstreamError
from .metrics import COLOUR_BLOCK, box_downscale, lab_distance, srgb_to_lab
from .models.config import PATCH_SIZE

MATRIX_SCALE = 4096  # gains and mixing weights in units of 1/4096 (int16: -8 .. 8)
OFFSET_SCALE = 16  # offsets in units of 1/16 grey level (int16: -2048 .. 2048)
PAYLOAD = struct.Struct("<12h")
MIN_GAIN = 0.5  # the decoder pays 30 bytes for a transform only when it removes this much dE76


def region_means(image: np.ndarray) -> np.ndarray:
    """The 16x16 region means (float64) of an HxWx3 image: all the corrections are fitted on."""
    return box_downscale(image, COLOUR_BLOCK)


def fit(target: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """(3, 4) transform [gain diagonal | offset] taking the decoded region means to the original's."""
    a, b = decoded.reshape(-1, 3), target.reshape(-1, 3)
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
    """HxWx3 uint8 -> HxWx3 uint8: rgb' = M[:, :3] rgb + M[:, 3], rounded and clipped. A
    diagonal M (what `fit` makes) is a table lookup per channel: the same float32 values."""
    gains = matrix[:, :3].astype(np.float32)
    offsets = matrix[:, 3].astype(np.float32)
    if np.count_nonzero(gains - np.diag(np.diag(gains))) == 0:
        levels = np.arange(256, dtype=np.float32)[:, None]
        tables = np.clip(np.rint(levels * np.diag(gains)[None] + offsets), 0, 255).astype(np.uint8)  # (256, 3)
        return np.stack([tables[image[..., c], c] for c in range(3)], axis=-1)
    out = image.astype(np.float32) @ gains.T + offsets
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _moved(means: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Region means after the transform (clipped like pixels; rounding averages out)."""
    return np.clip(means @ matrix[:, :3].T + matrix[:, 3], 0, 255)


def transform_information(target: np.ndarray, decoded: np.ndarray) -> tuple[bytes, np.ndarray]:
    """(the packed transform, the decoded region means after it) when it removes at least
    MIN_GAIN of colour error, else (b"", the means unchanged): none is sent."""
    matrix = fit(target, decoded)
    corrected = _moved(decoded, matrix)
    target_lab = srgb_to_lab(target)
    gain = lab_distance(srgb_to_lab(decoded), target_lab) - lab_distance(srgb_to_lab(corrected), target_lab)
    return (pack(matrix), corrected) if gain >= MIN_GAIN else (b"", decoded)


# -- the grid of offsets (chunk CGRD) ----------------------------------------------------------
GRID_CELLS = (16, 32, 48, 64, 96, 128, 192, 256)  # cell sides the encoder tries, pixels (multiples of 16)
GRID_STEPS = (4, 8, 16)  # quantiser steps it tries, in GRID_STEP_UNIT
GRID_STEP_UNIT = 0.25  # grey levels
GRID_MAX_ORDER = 6  # Exp-Golomb orders 0..6
GRID_RATE_COST = 0.05  # dE76 a grid must remove per percent of the payload's bytes it adds
GRID_MAX_SHARE = 0.10  # never more than this fraction of the payload
GRID_MAX_OFFSET = 255.0  # grey levels; larger values are malformed
_GRID_HEAD = 3  # bytes: cell side / 16, step in GRID_STEP_UNIT, Exp-Golomb order
_MAX_PREFIX = 24  # zero bits before an Exp-Golomb value's 1: more is malformed


def grid_shape(height: int, width: int, cell: int) -> tuple[int, int]:
    """Cells of side `cell` over the image from its top-left corner; the last row/column may be partial."""
    return -(-height // cell), -(-width // cell)


def _interpolation(size: int, cells: int, cell: int, positions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per position along one axis (default: every pixel centre): the two cells it blends and the
    second one's weight (bilinear between cell centres, constant beyond the outer centres)."""
    starts = np.arange(cells) * cell
    centres = (starts + np.minimum(starts + cell, size)) / 2
    if positions is None:
        positions = np.arange(size) + 0.5
    position = np.interp(positions, centres, np.arange(cells, dtype=np.float64))
    first = np.floor(position).astype(np.int64)
    return first, np.minimum(first + 1, cells - 1), (position - first).astype(np.float32)


def _field(offsets: np.ndarray, cell: int, size: tuple[int, int], positions: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The interpolated offsets at the given row and column positions: (len(rows), len(cols), 3)."""
    (y0, y1, wy), (x0, x1, wx) = (
        _interpolation(n, cells, cell, at) for n, cells, at in zip(size, offsets.shape[:2], positions)
    )
    across = offsets[:, x0] * (1 - wx)[None, :, None] + offsets[:, x1] * wx[None, :, None]
    return across[y0] * (1 - wy)[:, None, None] + across[y1] * wy[:, None, None]


def apply_grid(image: np.ndarray, offsets: np.ndarray, cell: int) -> np.ndarray:
    """HxWx3 uint8 + the interpolated (rows, cols, 3) offsets, rounded and clipped; row bands keep
    the float field small for any image size."""
    height, width = image.shape[:2]
    values = offsets.astype(np.float32)
    columns = np.arange(width) + 0.5
    out = np.empty_like(image)
    band = 256
    for top in range(0, height, band):
        part = slice(top, min(top + band, height))
        field = _field(values, cell, (height, width), (np.arange(part.start, part.stop) + 0.5, columns))
        out[part] = np.clip(np.rint(image[part].astype(np.float32) + field), 0, 255).astype(np.uint8)
    return out


def _region_centres(regions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return tuple(np.arange(n) * COLOUR_BLOCK + COLOUR_BLOCK / 2 for n in regions.shape[:2])  # type: ignore[return-value]


def fit_grid(target: np.ndarray, decoded: np.ndarray, size: tuple[int, int], cell: int, rounds: int = 3) -> np.ndarray:
    """Offsets for an image of `size` whose interpolated field brings the 16x16 region means
    `decoded` to `target` (what `colour_error` compares): the cell means of their difference,
    refined on what is left after the interpolated field (interpolation blurs them). Cheap: it
    works on region means. Cells without a whole region copy their neighbour."""
    rows, cols = grid_shape(*size, cell)
    per_cell = cell // COLOUR_BLOCK
    whole = (-(-target.shape[0] // per_cell), -(-target.shape[1] // per_cell))  # cells holding whole regions
    offsets = np.zeros((rows, cols, 3))
    centres = _region_centres(target)
    starts = [np.arange(0, n, per_cell) for n in target.shape[:2]]
    counts = np.diff(np.append(starts[0], target.shape[0]))[:, None] * np.diff(np.append(starts[1], target.shape[1]))[None, :]
    for _ in range(rounds):
        left = target - decoded - _field(offsets, cell, size, centres)
        sums = np.add.reduceat(np.add.reduceat(left, starts[0], axis=0), starts[1], axis=1)
        offsets[: whole[0], : whole[1]] += sums / counts[..., None]
        offsets[whole[0] :] = offsets[whole[0] - 1 : whole[0]]
        offsets[:, whole[1] :] = offsets[:, whole[1] - 1 : whole[1]]
    return offsets


def pack_grid(levels: np.ndarray, cell: int, step: int) -> bytes:
    """Chunk CGRD: cell / 16, step, Exp-Golomb order, then the zigzagged integer levels (row-major,
    R G B per cell) in Exp-Golomb codes of the order that gives the fewest bytes."""
    zigzag = _zigzag(levels)
    order = min(range(GRID_MAX_ORDER + 1), key=lambda k: (_code_lengths(zigzag, k).sum() + 7) // 8)
    return bytes([cell // PATCH_SIZE, step, order]) + _exp_golomb(zigzag, order)


def grid_bytes(levels: np.ndarray) -> int:
    """len(pack_grid(levels, ...)) without building the codes: what the encoder's search compares."""
    zigzag = _zigzag(levels)
    return _GRID_HEAD + min((int(_code_lengths(zigzag, k).sum()) + 7) // 8 for k in range(GRID_MAX_ORDER + 1))


def _zigzag(levels: np.ndarray) -> np.ndarray:
    values = levels.astype(np.int64).ravel()
    return np.where(values >= 0, 2 * values, -2 * values - 1)


def _code_lengths(zigzag: np.ndarray, order: int) -> np.ndarray:
    """Bits of each value's order-k Exp-Golomb code: 2 * bit_length(v + 2^k) - 1 - k."""
    return 2 * np.frexp((zigzag + (1 << order)).astype(np.float64))[1].astype(np.int64) - 1 - order


def _exp_golomb(zigzag: np.ndarray, order: int) -> bytes:
    """The codes back to back, MSB first, zero-padded to whole bytes: each is bit_length(code) - 1
    - order zeros, then the code (value + 2^order) in binary."""
    codes = zigzag + (1 << order)
    lengths = _code_lengths(zigzag, order)
    ends = np.cumsum(lengths)
    bits = np.zeros(int(ends[-1]) if len(ends) else 0, dtype=np.uint8)
    widths = (lengths + 1 + order) // 2  # bit_length(code)
    for bit in range(int(widths.max(initial=0))):  # bit `bit` from the code's least significant end
        has = widths > bit
        bits[ends[has] - 1 - bit] = (codes[has] >> bit) & 1
    return np.packbits(bits).tobytes()


def unpack_grid(data: bytes, height: int, width: int) -> tuple[np.ndarray, int]:
    """(offsets in grey levels, cell side) of a CGRD chunk for an image of this size; a malformed
    chunk (bad head, too few or too many codes, an offset beyond GRID_MAX_OFFSET) is a BitstreamError."""
    if len(data) < _GRID_HEAD or not data[0] or not data[1] or data[2] > GRID_MAX_ORDER:
        raise BitstreamError("malformed stream: colour grid header")
    cell, step, order = data[0] * PATCH_SIZE, data[1], data[2]
    rows, cols = grid_shape(height, width, cell)
    count = rows * cols * 3
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8, offset=_GRID_HEAD))
    if count > len(bits) // (order + 1):  # every code has at least order + 1 bits
        raise BitstreamError(f"malformed stream: colour grid of {len(data)} bytes cannot hold {count} offsets")
    text = "".join("1" if b else "0" for b in bits.tolist())
    values, at = [], 0
    for _ in range(count):
        one = text.find("1", at, at + _MAX_PREFIX + 1)
        if one < 0:
            raise BitstreamError("malformed stream: colour grid code too long or truncated")
        zeros = one - at
        end = one + zeros + order + 1
        if end > len(text):
            raise BitstreamError("malformed stream: colour grid truncated")
        values.append(int(text[one:end], 2) - (1 << order))
        at = end
    if len(text) - at >= 8 or "1" in text[at:]:
        raise BitstreamError("malformed stream: trailing data in the colour grid")
    zigzag = np.array(values, dtype=np.int64)
    levels = np.where(zigzag % 2 == 0, zigzag // 2, -(zigzag + 1) // 2)
    offsets = levels.reshape(rows, cols, 3) * (step * GRID_STEP_UNIT)
    if np.abs(offsets).max(initial=0) > GRID_MAX_OFFSET:
        raise BitstreamError("malformed stream: colour grid offset out of range")
    return offsets, cell


def grid_information(target: np.ndarray, regions: np.ndarray, size: tuple[int, int], payload_bytes: int) -> bytes:
    """The CGRD chunk for an image of `size` that lowers colour error + GRID_RATE_COST per percent
    of `payload_bytes` the most, within GRID_MAX_SHARE of them; b"" when none beats sending
    nothing. Judged on region means (the field's value at each region's centre added to its
    mean: exact up to rounding and clipping) and each candidate's size (`grid_bytes`); only the
    chosen one is packed."""
    if min(size) < COLOUR_BLOCK:
        return b""
    centres = _region_centres(target)
    target_lab = srgb_to_lab(target)
    best, best_cost = None, lab_distance(srgb_to_lab(regions), target_lab)  # sending nothing
    for cell in GRID_CELLS:
        if cell > max(size) and cell != GRID_CELLS[0]:
            break
        offsets = fit_grid(target, regions, size, cell)
        for step in GRID_STEPS:
            quantum = step * GRID_STEP_UNIT
            levels = np.clip(np.round(offsets / quantum), -GRID_MAX_OFFSET // quantum, GRID_MAX_OFFSET // quantum)
            share = (grid_bytes(levels) + 6) / max(payload_bytes, 1)  # + the chunk's tag and length
            if share > GRID_MAX_SHARE:
                continue
            moved = np.clip(regions + _field(levels * quantum, cell, size, centres), 0, 255)
            cost = lab_distance(srgb_to_lab(moved), target_lab) + GRID_RATE_COST * 100 * share
            if cost < best_cost:
                best, best_cost = (levels, cell, step), cost
    return b"" if best is None else pack_grid(*best)


def side_information(original: np.ndarray, decoded: np.ndarray, payload_bytes: int) -> tuple[bytes, bytes]:
    """(CLRT, CGRD) chunk data for an image, each b"" when it does not pay, from the original
    pixels and the region means of its decoding (`region_means`: of a whole decode, or estimated
    from part of the pixel head, `kernels.fast.FastPath.region_means`); the grid is fitted after
    the transform, the order the decoder applies them in (`correct`)."""
    target = region_means(original)
    if decoded.shape != target.shape:
        raise ValueError(f"decoded region means of shape {decoded.shape} do not fit the image's {target.shape}")
    transform, decoded = transform_information(target, decoded)
    return transform, grid_information(target, decoded, original.shape[:2], payload_bytes)


def check(transform: bytes, grid: bytes, height: int, width: int) -> None:
    """BitstreamError if a stream's corrections are malformed: what a decoder checks before decoding."""
    if transform:
        unpack(transform)
    if grid:
        unpack_grid(grid, height, width)


def correct(image: np.ndarray, transform: bytes, grid: bytes) -> np.ndarray:
    """A decoder's uint8 output with a stream's corrections applied: the transform, then the grid."""
    if transform:
        image = apply(image, unpack(transform))
    if grid:
        offsets, cell = unpack_grid(grid, *image.shape[:2])
        image = apply_grid(image, offsets, cell)
    return image
