"""Payload coding of an index grid: the method ids of container v1 and their (de)coders.

Method 0 is the reference's fixed-length packing; methods 1 and 2 range-code the indices with
constriction under a fitted `IndexPrior` (static marginal, or the four-pass context model). Their
payload starts with the prior's 4-byte digest, so a stream is never decoded under another prior.
Method 3 range-codes under a model that adapts while coding (adaptive.py): what models without a
fitted prior use, so they too get entropy coding.
"""

from __future__ import annotations

import constriction
import numpy as np

from ..errors import BitstreamError
from . import adaptive
from .packing import pack_indices, packed_size, unpack_indices
from .prior import FREQ_BITS, PASSES, IndexPrior, pad_grid, pass_positions

METHOD_FIXED = 0
METHOD_STATIC = 1
METHOD_CONTEXT = 2
METHOD_ADAPTIVE = 3
METHOD_NAMES = {METHOD_FIXED: "fixed-length", METHOD_STATIC: "static prior", METHOD_CONTEXT: "context prior",
                METHOD_ADAPTIVE: "adaptive"}
DIGEST_BYTES = 4
CHUNK = 1 << 15  # positions whose (CHUNK, K) frequency table is built at once: bounds coding memory
_FAMILY = constriction.stream.model.Categorical(perfect=False)


def _static_model(prior: IndexPrior) -> constriction.stream.model.Categorical:
    return constriction.stream.model.Categorical(prior.static_frequencies().astype(np.float64), perfect=False)


def _range_encode(grid: np.ndarray, prior: IndexPrior, method: int) -> bytes:
    encoder = constriction.stream.queue.RangeEncoder()
    if method == METHOD_STATIC:
        encoder.encode(grid.ravel().astype(np.int32), _static_model(prior))
    else:
        padded = pad_grid(grid, prior.codebook_size)
        for name in PASSES:
            rows, cols = pass_positions(grid.shape, name)
            if not len(rows):
                continue
            symbols = grid[rows, cols].astype(np.int32)
            if name == "A":
                encoder.encode(symbols, _static_model(prior))
                continue
            for at in range(0, len(rows), CHUNK):  # one symbol stream: the same bytes as one call
                part = slice(at, at + CHUNK)
                freqs = prior.frequencies(padded, rows[part], cols[part], name).astype(np.float64)
                encoder.encode(symbols[part], _FAMILY, freqs)
    words = encoder.get_compressed().astype("<u4")
    return prior.digest + words.tobytes()


def _range_decode(payload: bytes, shape: tuple[int, int], prior: IndexPrior, method: int) -> np.ndarray:
    if len(payload) < DIGEST_BYTES or (len(payload) - DIGEST_BYTES) % 4:
        raise BitstreamError(f"malformed payload: {len(payload)} bytes is not a prior digest plus 32-bit words")
    if payload[:DIGEST_BYTES] != prior.digest:
        raise BitstreamError(
            f"stream was coded with index prior {payload[:DIGEST_BYTES].hex()}, but this model file has prior {prior.digest.hex()}"
        )
    words = np.frombuffer(payload[DIGEST_BYTES:], dtype="<u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    if method == METHOD_STATIC:
        return decoder.decode(_static_model(prior), shape[0] * shape[1]).astype(np.int64).reshape(shape)
    grid = np.zeros(shape, dtype=np.int64)
    padded = pad_grid(grid, prior.codebook_size)
    for name in PASSES:
        rows, cols = pass_positions(shape, name)
        if not len(rows):
            continue
        if name == "A":
            symbols = decoder.decode(_static_model(prior), len(rows))
        else:  # a pass's contexts lie in earlier passes, so its chunks decode in any grouping
            symbols = np.concatenate([
                decoder.decode(_FAMILY, prior.frequencies(padded, rows[at : at + CHUNK], cols[at : at + CHUNK], name).astype(np.float64))
                for at in range(0, len(rows), CHUNK)
            ])
        grid[rows, cols] = symbols
        padded[rows + 1, cols + 1] = symbols
    return grid


def min_payload_bytes(count: int, codebook_size: int) -> int:
    """Fewest payload bytes a range-coded grid of `count` indices can have: in every context the most
    likely symbol has frequency 2**FREQ_BITS and each other one at least 1 (prior.py), so every
    index costs at least -log2(2**15 / (2**15 + K - 1)) bits (0.011 for K = 256; the adaptive
    method caps its tables the same way). A stream below this declares a larger image than its
    payload can describe: refused before decoding, so a 60-byte stream cannot make the decoder
    work through 100 megapixels. Counts the range-coded words only (not a prior digest)."""
    bits = count * -np.log2((1 << FREQ_BITS) / ((1 << FREQ_BITS) + codebook_size - 1))
    return max(0, int(bits * 0.9 / 8) - 8)  # 10 % and two words of slack for the coder's rounding


def encode_grid(grid: np.ndarray, bits: int, prior: IndexPrior | None, methods: tuple[int, ...] | None = None) -> tuple[int, bytes]:
    """(method, payload) of the smallest payload among `methods` (default: every method the prior allows)."""
    grid = np.asarray(grid, dtype=np.int64)
    if methods is None:
        methods = (METHOD_FIXED, METHOD_ADAPTIVE) if prior is None else (METHOD_FIXED, METHOD_STATIC, METHOD_CONTEXT)
    best: tuple[int, bytes] | None = None
    for method in methods:
        if method == METHOD_FIXED:
            payload = pack_indices(grid.ravel(), bits)
        elif method in (METHOD_STATIC, METHOD_CONTEXT):
            if prior is None:
                raise ValueError(f"method {method} needs an index prior")
            payload = _range_encode(grid, prior, method)
        elif method == METHOD_ADAPTIVE:
            payload = adaptive.encode(grid, 1 << bits)
        else:
            raise ValueError(f"unknown entropy-coding method {method}")
        if best is None or len(payload) < len(best[1]):
            best = (method, payload)
    if best is None:
        raise ValueError("no entropy-coding method given")
    return best


def decode_grid(method: int, payload: bytes, shape: tuple[int, int], bits: int, prior: IndexPrior | None) -> np.ndarray:
    """Inverse of `encode_grid`; any payload, however damaged, gives a grid of valid indices or a BitstreamError."""
    if method == METHOD_FIXED:
        return unpack_indices(payload, bits, shape[0] * shape[1]).reshape(shape)
    if method not in (METHOD_STATIC, METHOD_CONTEXT, METHOD_ADAPTIVE):
        raise BitstreamError(f"unsupported entropy-coding method {method}")
    if method != METHOD_ADAPTIVE and prior is None:
        raise BitstreamError(f"stream uses the {METHOD_NAMES[method]} (method {method}), but this model file has no index prior")
    digest = 0 if method == METHOD_ADAPTIVE else DIGEST_BYTES
    # A range coder emits at most about one 32-bit word per 32 bits of information plus two;
    # bounding the payload keeps a hostile stream from making us decode far more than it holds.
    if len(payload) > digest + packed_size(shape[0] * shape[1], 24) + 8:
        raise BitstreamError(f"malformed payload: {len(payload)} bytes is more than {shape[0]}x{shape[1]} indices can need")
    floor = digest + min_payload_bytes(shape[0] * shape[1], 1 << bits)
    if len(payload) < floor:
        raise BitstreamError(f"malformed payload: {len(payload)} bytes is too short for {shape[0]}x{shape[1]} indices (at least {floor})")
    try:
        if method == METHOD_ADAPTIVE:
            return adaptive.decode(payload, shape, 1 << bits)
        return _range_decode(payload, shape, prior, method)
    except (AssertionError, ValueError, RuntimeError) as e:  # constriction's reports of impossible data
        raise BitstreamError(f"corrupted payload: {e}") from None
