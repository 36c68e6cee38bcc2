"""Writes adaptive_golden.npz: index grids and their method-3 (adaptive) payloads (2026-12-06).

Run once; never regenerate to make a failing test pass: the file pins the stream format.
"""

from pathlib import Path

import numpy as np

from cod_lite.entropy.coding import METHOD_ADAPTIVE, encode_grid


def smooth_grid(rng, h, w, k):
    field = np.kron(rng.normal(size=(h // 4 + 2, w // 4 + 2)), np.ones((4, 4)))[:h, :w] + 0.3 * rng.normal(size=(h, w))
    return np.clip(((field + 3) / 6 * k).astype(np.int64), 0, k - 1)


out = {}
for k in (16, 256):
    rng = np.random.default_rng(3026 + k)
    grid = smooth_grid(rng, 37, 53, k)
    out[f"k{k}_grid"] = grid
    out[f"k{k}_payload"] = np.frombuffer(encode_grid(grid, k.bit_length() - 1, None, (METHOD_ADAPTIVE,))[1], np.uint8)
np.savez_compressed(Path(__file__).with_name("adaptive_golden.npz"), **out)
