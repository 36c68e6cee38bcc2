"""Method 3: range coding under a model that learns while it codes, for models with no fitted
prior (the authors' checkpoints, any imported model): entropy coding out of the box.

The grid is coded in the four passes of the fitted context model (prior.py): A on the even/even
sub-lattice row by row, then B, C, D in chunks. A symbol's frequency is the count of that index
so far in the image (all start at 1), plus a bonus of a sixteenth of all counts for every decoded
neighbour holding it: VQ indices of photos repeat their neighbours. Counts grow after each row
or chunk, so encoder and decoder see the same tables. Only integer arithmetic builds them, so
every machine codes the same bytes; the most likely symbol is capped at 2**15 times the least
likely, which keeps the payload floor of `coding.min_payload_bytes` valid for this method too.
"""

from __future__ import annotations

import constriction
import numpy as np

from .prior import FREQ_BITS, PASSES, RELATIONS, pad_grid, pass_positions

CHUNK = 512  # B/C/D positions coded with one state of the counts
BONUS_SHIFT = 4  # a neighbour holding a symbol adds total >> 4 to its count (best of 2..5 on 8 training photos)
# pass A sees only rows above it in its own lattice (its row is coded at once)
A_NEIGHBOURS = ((-2, -2), (-2, 0), (-2, 2))
_FAMILY = constriction.stream.model.Categorical(perfect=False)


def _offsets(pass_name: str) -> list[tuple[int, int]]:
    if pass_name == "A":
        return list(A_NEIGHBOURS)
    out = []
    for relation, flipped in PASSES[pass_name][2]:
        dy, dx = RELATIONS[relation]
        out.append((-dy, -dx) if flipped else (dy, dx))
    return out


def _frequencies(counts: np.ndarray, padded: np.ndarray, rows: np.ndarray, cols: np.ndarray, offsets: list[tuple[int, int]]) -> np.ndarray:
    """(m, K) integer frequencies (as float64, exact) for the positions (rows, cols)."""
    k = len(counts)
    freqs = np.repeat(counts[None], len(rows), axis=0)
    bonus = int(counts.sum()) >> BONUS_SHIFT
    index = np.arange(len(rows))
    for dy, dx in offsets:
        y, x = rows + 1 + dy, cols + 1 + dx
        inside = (y >= 0) & (y < padded.shape[0]) & (x >= 0) & (x < padded.shape[1])
        values = np.full(len(rows), k)
        values[inside] = padded[y[inside], x[inside]]
        hit = values < k
        np.add.at(freqs, (index[hit], values[hit]), bonus)
    floor = (freqs.max(axis=1, keepdims=True) >> FREQ_BITS) + 1
    return np.maximum(freqs, floor).astype(np.float64)


def _chunks(shape: tuple[int, int], pass_name: str) -> list[tuple[np.ndarray, np.ndarray]]:
    rows, cols = pass_positions(shape, pass_name)
    if pass_name == "A":  # one lattice row at a time: its neighbours above are decoded
        return [(rows[rows == r], cols[rows == r]) for r in np.unique(rows)]
    return [(rows[i : i + CHUNK], cols[i : i + CHUNK]) for i in range(0, len(rows), CHUNK)]


def encode(grid: np.ndarray, codebook_size: int) -> bytes:
    grid = np.asarray(grid, dtype=np.int64)
    counts = np.ones(codebook_size, dtype=np.int64)
    padded = pad_grid(grid, codebook_size)
    encoder = constriction.stream.queue.RangeEncoder()
    for name in PASSES:
        offsets = _offsets(name)
        for rows, cols in _chunks(grid.shape, name):
            symbols = grid[rows, cols]
            encoder.encode(symbols.astype(np.int32), _FAMILY, _frequencies(counts, padded, rows, cols, offsets))
            counts += np.bincount(symbols, minlength=codebook_size)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode(payload: bytes, shape: tuple[int, int], codebook_size: int) -> np.ndarray:
    """Inverse of `encode`; constriction's errors on impossible data propagate (coding.py maps them)."""
    if len(payload) % 4:
        raise ValueError(f"{len(payload)} bytes is not whole 32-bit words")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    counts = np.ones(codebook_size, dtype=np.int64)
    grid = np.zeros(shape, dtype=np.int64)
    padded = pad_grid(grid, codebook_size)
    for name in PASSES:
        offsets = _offsets(name)
        for rows, cols in _chunks(shape, name):
            symbols = np.asarray(decoder.decode(_FAMILY, _frequencies(counts, padded, rows, cols, offsets)), dtype=np.int64)
            grid[rows, cols] = symbols
            padded[rows + 1, cols + 1] = symbols
            counts += np.bincount(symbols, minlength=codebook_size)
    return grid
