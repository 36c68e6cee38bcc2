"""Encoder effort levels side by side, like `avifenc --speed` or `cjxl -e` tables.

    python benchmarks/effort.py --set kodak --model default --model cod-lite-s-0.03
    python benchmarks/effort.py --set everyday --images 4

Every image is compressed at each effort level (colour side information on, as by default) and
decoded; prints one markdown row per model and level with the means over the images: bpp, PSNR,
LPIPS-Alex, DISTS, colour error (dE76 of 16x16 regions), pattern and blockiness of the
decodings, encode seconds per image and its ratio to effort 0. `--set everyday` is the photos
no training set comes from (`benchmarks/testsets.py`); `--set kodak` the 24 Kodak images. Runs
with the threads torch is given; rows print as they finish.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import cod_lite
import testsets
from cod_lite import bitstream, metrics
from cod_lite.effort import EFFORT_STEPS
from cod_lite.image_io import load_image

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"


def row(codec: cod_lite.Codec, images: list[np.ndarray], effort: int) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for image in images:
        start = time.perf_counter()
        stream = codec.encode(image, effort=effort)
        seconds = time.perf_counter() - start
        decoded = np.asarray(codec.decode(stream))
        measured = {
            "bpp": bitstream.bits_per_pixel(len(stream), image.shape[1], image.shape[0]), "psnr": metrics.psnr(image, decoded),
            "lpips_alex": metrics.lpips(image, decoded), "dists": metrics.dists(image, decoded),
            "colour": metrics.colour_error(image, decoded), "pattern": metrics.patch_pattern(decoded),
            "blockiness": metrics.blockiness(decoded), "encode_s": seconds,
        }
        for key, value in measured.items():
            values.setdefault(key, []).append(value)
    return {key: float(np.mean(v)) for key, v in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=("kodak", "everyday"), default="kodak")
    parser.add_argument("--model", action="append", help="repeatable [default: the bundled models offered for new streams]")
    parser.add_argument("--images", type=int, default=None, help="only the first N images")
    parser.add_argument("--efforts", type=int, nargs="*", default=list(range(len(EFFORT_STEPS))))
    args = parser.parse_args()
    folder = KODAK if args.set == "kodak" else testsets.fetch("everyday")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[: args.images]
    images = [load_image(p) for p in paths]
    names = args.model or [m.name for m in sorted(cod_lite.available_models(), key=lambda m: m.config.nominal_bpp)
                           if m.origin == "bundled" and m.retired is None]
    metrics.preload()
    print(f"{args.set}: {len(images)} images; means per image")
    print("| model | effort | bpp | PSNR | LPIPS-Alex | DISTS | colour dE | pattern | blockiness | encode | x effort 0 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        codec = cod_lite.load_model(name)
        base = None
        for effort in args.efforts:
            r = row(codec, images, effort)
            base = base or r["encode_s"]
            print(f"| {codec.name} | {effort} | {r['bpp']:.4f} | {r['psnr']:.2f} | {r['lpips_alex']:.4f} | {r['dists']:.4f} | "
                  f"{r['colour']:.2f} | {r['pattern']:.2f} | {r['blockiness']:.3f} | {r['encode_s']:.1f} s | x{r['encode_s'] / base:.1f} |", flush=True)


if __name__ == "__main__":
    main()
