"""Entropy coding on a folder (default Kodak): file size per method and the entropy stage's time share.

    python benchmarks/entropy.py [--models cod-lite-s-0.125 ...] [--data ../shared/data/kodak] [--out docs/entropy.md]

For each model and image: the VQ index grid is coded with fixed-length packing (method 0, the
reference), the static prior (1) and the context prior (2) where the model has a fitted prior,
and the adaptive coder (3), which needs none; every payload is decoded back and
must give the same grid, so decoded pixels are identical whichever method is used. Reports mean
bits per index, mean file size (whole stream, header and CRC included), the saving against
fixed-length, and the median entropy encode/decode time next to the network's decode time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import cod_lite
from cod_lite import bitstream
from cod_lite.entropy.coding import METHOD_ADAPTIVE, METHOD_FIXED, METHOD_NAMES, decode_grid, encode_grid
from cod_lite.image_io import find_images, load_image
from cod_lite.zoo import available_models

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kodak"


def timed(fn, repeats: int = 3):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def measure(model: str, images: list[Path]) -> list[str]:
    codec = cod_lite.load_model(model)
    methods = {m: n for m, n in METHOD_NAMES.items() if codec.prior is not None or m in (METHOD_FIXED, METHOD_ADAPTIVE)}
    bits = codec.model_config.codebook_bits
    sizes = {m: [] for m in methods}
    enc_t = {m: [] for m in methods}
    dec_t = {m: [] for m in methods}
    chosen, net_decode, indices = [], [], 0
    for path in images:
        pixels = load_image(path)
        h, w = pixels.shape[:2]
        grid = codec.quantize(pixels)
        indices += grid.size
        for method in methods:
            (_, payload), t_enc = timed(lambda: encode_grid(grid, bits, codec.prior, (method,)))
            decoded, t_dec = timed(lambda: decode_grid(method, payload, grid.shape, bits, codec.prior))
            assert np.array_equal(decoded, grid), f"method {method} is not lossless on {path.name}"
            stream = bitstream.serialize(bitstream.StreamHeader(codec.name, codec.identity, w, h, 0, method, payload))
            sizes[method].append(len(stream))
            enc_t[method].append(t_enc)
            dec_t[method].append(t_dec)
        chosen.append(bitstream.parse(codec.encode(pixels)).method)
        _, t_net = timed(lambda: codec.reconstruct(grid, h, w), repeats=1)
        net_decode.append(t_net)
    pixels_total = sum(np.prod(load_image(p).shape[:2]) for p in images)
    net = statistics.median(net_decode)
    fixed = sum(sizes[0])
    lines = [
        f"### {codec.name} ({len(images)} images, {indices / len(images):.0f} indices each, codebook {codec.model_config.codebook_size})",
        "",
        "| method | bits/index | mean bytes | bpp | vs fixed | encode ms | decode ms | decode share |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, name in methods.items():
        total = sum(sizes[method])
        payload_bits = 8 * total / indices
        dec = statistics.median(dec_t[method])
        lines.append(
            f"| {method}: {name} | {payload_bits:.3f} | {total / len(images):.0f} | {8 * total / pixels_total:.4f} | "
            f"{100 * (total / fixed - 1):+.1f}% | {1e3 * statistics.median(enc_t[method]):.2f} | {1e3 * dec:.2f} | {100 * dec / (dec + net):.1f}% |"
        )
    lines += [
        "",
        f"Network decode (median): {1e3 * net:.0f} ms on {torch.get_num_threads()} threads. "
        f"Default encoder choice: {', '.join(f'method {m} x{chosen.count(m)}' for m in sorted(set(chosen)))}. "
        "bits/index counts the whole stream (header, prior digest, CRC).",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=None, help="default: every bundled model")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    args = parser.parse_args()
    images = find_images(args.data)[: args.limit] if args.data.is_dir() else []
    if not images:
        sys.exit(f"no images under {args.data} (the Kodak set lives in ../shared/data/kodak next to the project)")
    models = args.models or [m.name for m in available_models() if m.origin == "bundled"]
    lines = [line for model in models for line in measure(model, images)]
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
