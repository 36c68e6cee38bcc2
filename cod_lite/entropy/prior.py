"""A learned prior over VQ index grids, held in integers so every machine computes the same probabilities.

The grid is coded in four passes over its 2x2 sub-lattices (docs/format.md, "Methods"):
A = (even row, even col) with the static marginal, then B = (odd, odd) given its four diagonal
A-neighbours, C = (even, odd) given its four axis neighbours (A and B), D = (odd, even) given
its four axis and four diagonal neighbours. A symbol's logit is the marginal log-probability plus
a weighted sum of pointwise mutual informations with its decoded neighbours (a product of
experts), all in fixed-point integers; a stored integer table turns logits into frequencies.
Only integer gathers, adds, multiplies, shifts and clips run at coding time, so the frequencies
handed to the range coder are bit-identical on every CPU, GPU, thread count and numpy build.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import CheckpointError

FRAC_BITS = 6  # log2 values are stored in units of 1/64 bit
WEIGHT_BITS = 4  # neighbour weights are w / 16
MAX_DROP = 20 << FRAC_BITS  # frequencies cover 20 bits below the most likely symbol
FREQ_BITS = 15  # the most likely symbol gets frequency 2**15; totals stay below 2**24
PMI_LIMIT = 2**15 - 1

# (dy, dx) of the neighbour relative to the symbol, and the PMI table relating them:
# 'h' pairs (left, right), 'v' (up, down), 'd' (up-left, down-right), 'a' (up-right, down-left).
# A neighbour at (-dy, -dx) uses the same table transposed.
RELATIONS = {"h": (0, -1), "v": (-1, 0), "d": (-1, -1), "a": (-1, 1)}
AXIS = [("h", False), ("h", True), ("v", False), ("v", True)]
DIAGONAL = [("d", False), ("d", True), ("a", False), ("a", True)]
# pass name -> (row parity, column parity, neighbours used)
PASSES = {"A": (0, 0, []), "B": (1, 1, DIAGONAL), "C": (0, 1, AXIS), "D": (1, 0, AXIS + DIAGONAL)}
TENSOR_KEYS = ("log_marginal", "pmi_h", "pmi_v", "pmi_d", "pmi_a", "weights", "exp_table")


def _exp_table() -> np.ndarray:
    """round(2**FREQ_BITS * 2**(-i/64)), at least 1; computed once when fitting, then stored."""
    drops = np.arange(MAX_DROP + 1, dtype=np.float64)
    return np.maximum(1, np.round(2.0**FREQ_BITS * np.exp2(-drops / (1 << FRAC_BITS)))).astype(np.int32)


@dataclass(frozen=True)
class IndexPrior:
    """Integer tables: log2 marginal (K,), four PMI tables (K+1, K+1) with a zero border row/column,
    per-pass neighbour weights (3,) for B, C, D, and the logit -> frequency table."""

    log_marginal: np.ndarray
    pmi_h: np.ndarray
    pmi_v: np.ndarray
    pmi_d: np.ndarray
    pmi_a: np.ndarray
    weights: np.ndarray
    exp_table: np.ndarray

    @property
    def codebook_size(self) -> int:
        return len(self.log_marginal)

    @functools.cached_property
    def digest(self) -> bytes:
        """4 bytes naming these exact tables; a stream coded with them stores it (hashed once)."""
        h = hashlib.sha256()
        for key in TENSOR_KEYS:
            a = np.ascontiguousarray(getattr(self, key))
            h.update(f"{key}|{a.dtype.str}|{a.shape}\n".encode())
            h.update(a.tobytes())
        return h.digest()[:4]

    # -- storage -------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        return {key: np.ascontiguousarray(getattr(self, key)) for key in TENSOR_KEYS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> IndexPrior:
        """Validate shapes and dtypes, so a damaged file fails here and not inside the coder."""
        try:
            values = {key: np.asarray(arrays[key]) for key in TENSOR_KEYS}
        except KeyError as e:
            raise CheckpointError(f"index prior is missing table {e}") from None
        k = len(values["log_marginal"])
        expected = {
            "log_marginal": ((k,), np.int32),
            "weights": ((3,), np.int32),
            "exp_table": ((MAX_DROP + 1,), np.int32),
            **{f"pmi_{r}": ((k + 1, k + 1), np.int16) for r in RELATIONS},
        }
        for key, (shape, dtype) in expected.items():
            if values[key].shape != shape or values[key].dtype != dtype:
                raise CheckpointError(f"index prior table {key} has shape {values[key].shape} {values[key].dtype}, expected {shape} {np.dtype(dtype)}")
        if not 2 <= k <= 2**16 or values["exp_table"].min() < 1 or values["exp_table"].max() > 2**FREQ_BITS:
            raise CheckpointError("index prior tables are out of range")
        if values["weights"].min() < 0 or values["weights"].max() > 4 << WEIGHT_BITS:
            raise CheckpointError("index prior weights are out of range")
        return cls(**values)

    # -- probabilities -------------------------------------------------------------------------
    def static_frequencies(self) -> np.ndarray:
        """(K,) int32 frequencies of the marginal alone: pass A and method 1."""
        drop = int(self.log_marginal.max()) - self.log_marginal.astype(np.int64)
        return self.exp_table[np.minimum(drop, MAX_DROP)]

    def frequencies(self, padded: np.ndarray, rows: np.ndarray, cols: np.ndarray, pass_name: str) -> np.ndarray:
        """(m, K) int32 frequencies for the symbols at (rows, cols) of a grid padded by one border
        of value K on every side (coordinates are in the unpadded grid)."""
        _, _, neighbours = PASSES[pass_name]
        k = self.codebook_size
        # int32 is exact here: |context| <= 8 * PMI_LIMIT < 2**18 and weights <= 2**6, so logits
        # stay far below 2**31, and half the width of int64 halves the memory traffic.
        logits = np.broadcast_to(self.log_marginal << WEIGHT_BITS, (len(rows), k))
        if neighbours:
            context = np.zeros((len(rows), k), dtype=np.int32)
            for relation, flipped in neighbours:
                dy, dx = RELATIONS[relation]
                if flipped:
                    dy, dx = -dy, -dx
                values = padded[rows + 1 + dy, cols + 1 + dx]
                context += np.take(self._gather_tables[relation, flipped], values, axis=0)
            logits = logits + np.int32(self.weights["BCD".index(pass_name)]) * context
        drop = (logits.max(axis=1, keepdims=True) - logits) >> WEIGHT_BITS
        return self.exp_table[np.minimum(drop, MAX_DROP)]

    @functools.cached_property
    def _gather_tables(self) -> dict[tuple[str, bool], np.ndarray]:
        """(K+1, K) contiguous row tables per (relation, flipped): a neighbour before the symbol
        relates as row -> column, one after it through the transpose."""
        k = self.codebook_size
        out = {}
        for r in RELATIONS:
            table = getattr(self, f"pmi_{r}")
            out[r, False] = np.ascontiguousarray(table[:, :k])
            out[r, True] = np.ascontiguousarray(table.T[:, :k])
        return out

    # -- fitting -------------------------------------------------------------------------------
    @classmethod
    def fit(cls, grids: list[np.ndarray], codebook_size: int, held_out: float = 0.2) -> IndexPrior:
        """Count marginals and neighbour co-occurrences over index grids, then choose the
        smoothing and per-pass weights that minimise the code length of held-out grids."""
        if not grids:
            raise ValueError("fitting a prior needs at least one index grid")
        grids = [np.asarray(grids[i], dtype=np.int64) for i in np.random.default_rng(0).permutation(len(grids))]
        split = max(1, int(len(grids) * (1 - held_out))) if len(grids) > 1 else 1
        train, test = grids[:split], grids[split:] or grids[:split]
        k = codebook_size
        counts = np.zeros(k, dtype=np.float64)
        joint = {r: np.zeros((k, k), dtype=np.float64) for r in RELATIONS}
        for grid in train:
            counts += np.bincount(grid.ravel(), minlength=k)
            for r, (dy, dx) in RELATIONS.items():
                a, b = _pairs(grid, dy, dx)
                np.add.at(joint[r], (a, b), 1)
        marginal = (counts + 0.5) / (counts.sum() + 0.5 * k)
        log_marginal = np.maximum(np.round(np.log2(marginal) * (1 << FRAC_BITS)), -(MAX_DROP)).astype(np.int32)
        exp_table = _exp_table()
        best = None
        for smoothing in (0.25, 1.0, 4.0):
            pmi = {r: _pmi(joint[r], marginal, smoothing) for r in RELATIONS}
            weights = np.zeros(3, dtype=np.int32)
            for i, name in enumerate("BCD"):
                costs = {}
                for w in range(0, (2 << WEIGHT_BITS) + 1, 2):
                    weights[i] = w
                    prior = cls(log_marginal, pmi["h"], pmi["v"], pmi["d"], pmi["a"], weights.copy(), exp_table)
                    costs[w] = sum(prior.pass_bits(g, name) for g in test)
                weights[i] = min(costs, key=costs.__getitem__)
            prior = cls(log_marginal, pmi["h"], pmi["v"], pmi["d"], pmi["a"], weights.copy(), exp_table)
            total = sum(prior.grid_bits(g) for g in test)
            if best is None or total < best[0]:
                best = (total, prior)
        return best[1]

    def pass_bits(self, grid: np.ndarray, pass_name: str) -> float:
        """Ideal code length (bits) of one pass of a grid under this prior."""
        rows, cols = pass_positions(grid.shape, pass_name)
        if not len(rows):
            return 0.0
        freqs = self.frequencies(pad_grid(grid, self.codebook_size), rows, cols, pass_name).astype(np.float64)
        chosen = freqs[np.arange(len(rows)), grid[rows, cols]]
        return float(-np.log2(chosen / freqs.sum(axis=1)).sum())

    def grid_bits(self, grid: np.ndarray) -> float:
        return sum(self.pass_bits(grid, name) for name in PASSES)


def pad_grid(grid: np.ndarray, codebook_size: int) -> np.ndarray:
    """The grid with a one-symbol border of the out-of-range value K, whose PMI rows are zero."""
    return np.pad(np.asarray(grid, dtype=np.int64), 1, constant_values=codebook_size)


def pass_positions(shape: tuple[int, int], pass_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Raster-order coordinates of one sub-lattice."""
    row_parity, col_parity, _ = PASSES[pass_name]
    rows, cols = np.meshgrid(np.arange(row_parity, shape[0], 2), np.arange(col_parity, shape[1], 2), indexing="ij")
    return rows.ravel(), cols.ravel()


def _pairs(grid: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """(neighbour, symbol) pairs where the neighbour sits at (dy, dx) from the symbol."""
    h, w = grid.shape
    ys, xs = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
    ys_n, xs_n = slice(ys.start + dy, ys.stop + dy), slice(xs.start + dx, xs.stop + dx)
    return grid[ys_n, xs_n].ravel(), grid[ys, xs].ravel()


def _pmi(joint: np.ndarray, marginal: np.ndarray, smoothing: float) -> np.ndarray:
    """log2 P(a, b) / (P(a) P(b)) in fixed point, with the joint shrunk towards independence
    by `smoothing` pseudo-counts per cell; a zero border row and column for off-grid neighbours."""
    k = len(marginal)
    independent = np.outer(marginal, marginal)
    pseudo = smoothing * k * k
    p = (joint + pseudo * independent) / (joint.sum() + pseudo)
    pa, pb = p.sum(axis=1, keepdims=True), p.sum(axis=0, keepdims=True)
    values = np.round(np.log2(p / (pa * pb)) * (1 << FRAC_BITS))
    out = np.zeros((k + 1, k + 1), dtype=np.int16)
    out[:k, :k] = np.clip(values, -PMI_LIMIT, PMI_LIMIT)
    return out
