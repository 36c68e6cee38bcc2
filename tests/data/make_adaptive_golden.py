"""Writes adaptive_golden.npz: index grids and their method-3 (adaptive) payloads (2026-12-06).

Run once, from the repository root (`python tests/data/make_adaptive_golden.py`); never
regenerate to make a failing test pass: the file pins the stream format.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[2]))
from cod_lite.entropy.coding import METHOD_ADAPTIVE, encode_grid  # noqa: E402
from tests.test_entropy import smooth_grid  # noqa: E402


out = {}
for k in (16, 256):
    rng = np.random.default_rng(3026 + k)
    grid = smooth_grid(rng, 37, 53, k)
    out[f"k{k}_grid"] = grid
    out[f"k{k}_payload"] = np.frombuffer(encode_grid(grid, k.bit_length() - 1, None, (METHOD_ADAPTIVE,))[1], np.uint8)
np.savez_compressed(Path(__file__).with_name("adaptive_golden.npz"), **out)
