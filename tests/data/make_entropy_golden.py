"""Writes entropy_golden.npz: fitted priors, index grids and their coded payloads (cod-lite 0.1).

Run once; never regenerate to make a failing test pass: the file pins the stream format.
"""

from pathlib import Path

import numpy as np

from cod_lite.entropy.coding import METHOD_CONTEXT, METHOD_STATIC, encode_grid
from cod_lite.entropy.prior import IndexPrior


def smooth_grid(rng, h, w, k):
    field = np.kron(rng.normal(size=(h // 4 + 2, w // 4 + 2)), np.ones((4, 4)))[:h, :w] + 0.3 * rng.normal(size=(h, w))
    return np.clip(((field + 3) / 6 * k).astype(np.int64), 0, k - 1)


out = {}
for k in (16, 256):
    rng = np.random.default_rng(2026 + k)
    prior = IndexPrior.fit([smooth_grid(rng, 24, 32, k) for _ in range(16)], k)
    grid = smooth_grid(rng, 19, 27, k)
    out.update({f"k{k}_prior_{name}": v for name, v in prior.to_arrays().items()})
    out[f"k{k}_grid"] = grid
    for method in (METHOD_STATIC, METHOD_CONTEXT):
        out[f"k{k}_method{method}"] = np.frombuffer(encode_grid(grid, k.bit_length() - 1, prior, (method,))[1], np.uint8)
np.savez_compressed(Path(__file__).with_name("entropy_golden.npz"), **out)
