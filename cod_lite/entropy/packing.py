"""Entropy method 0: fixed-length, MSB-first packing of VQ indices, byte-identical to the CoD-Lite reference."""

from __future__ import annotations

import numpy as np

from ..errors import BitstreamError

MAX_BITS = 16


def _check_bits(bits: int) -> None:
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be in 1..{MAX_BITS}, got {bits}")


def packed_size(count: int, bits: int) -> int:
    """Bytes that `count` indices of `bits` bits occupy: the last byte is zero-padded."""
    return (count * bits + 7) // 8


def pack_indices(indices: np.ndarray, bits: int) -> bytes:
    """Write each index (raster order) with exactly `bits` bits, MSB first, into consecutive bytes."""
    _check_bits(bits)
    flat = np.asarray(indices).ravel()
    if not np.issubdtype(flat.dtype, np.integer):
        raise ValueError(f"indices must be integers, got dtype {flat.dtype}")
    if flat.size and (flat.min() < 0 or flat.max() >= 1 << bits):
        raise ValueError(f"indices must be in 0..{(1 << bits) - 1} for {bits} bits")
    # Big-endian 16-bit words expose each index's bits MSB first; keep the low `bits` of each.
    words = flat.astype(">u2")
    columns = np.unpackbits(words.view(np.uint8)).reshape(-1, 16)[:, 16 - bits :]
    return np.packbits(columns).tobytes()


def unpack_indices(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of `pack_indices`; the payload must be exactly as long as `count` indices need."""
    _check_bits(bits)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    need = packed_size(count, bits)
    if len(data) != need:
        raise BitstreamError(f"payload is {len(data)} bytes, but {count} indices of {bits} bits need exactly {need}")
    columns = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * bits).reshape(count, bits)
    words = np.zeros((count, 16), dtype=np.uint8)
    words[:, 16 - bits :] = columns
    return np.packbits(words, axis=1).view(">u2").ravel().astype(np.int64)
