"""Side-by-side crops a person can judge: original | ours | AVIF at >= our bytes, one row per photo.

    python benchmarks/crops.py --models cod-lite-s-0.125 --out docs/holdout_crops_s-0.125.png
    python benchmarks/crops.py --set everyday --photos coffee.png chelsea.png --size 192

Each row is the centre size x size crop (at full resolution, no resampling) of one photo of the
set; the row's colour error and pattern are printed for ours and AVIF. AVIF gets the lowest
quality whose file has at least our bytes for that photo (kodak.match_bits).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import cod_lite
from cod_lite import metrics
from cod_lite.image_io import load_image

import testsets  # benchmarks/ is on sys.path when run as a script
from kodak import match_bits

# Colourful held-out photos: saturated feathers, an orange lantern, fruit.
DEFAULT_PHOTOS = ("imagenet_n01531178_goldfinch.jpg", "imagenet_n03590841_jack-o-lantern.jpg", "imagenet_n07753275_pineapple.jpg")


def centre(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[top : top + size, left : left + size]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="holdout", choices=sorted((*testsets.SETS, "holdout")))
    parser.add_argument("--photos", nargs="+", default=list(DEFAULT_PHOTOS))
    parser.add_argument("--models", nargs="+", default=["cod-lite-s-0.125"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, required=True, help="PNG; with several models, one file each (-MODEL added)")
    args = parser.parse_args()
    folder = testsets.fetch(args.set)
    for name in args.models:
        codec = cod_lite.load_model(name)
        rows = []
        for photo in args.photos:
            image = load_image(folder / photo)
            data = codec.encode(image)
            ours = np.asarray(codec.decode(data))
            avif_bytes, avif = match_bits(image, "AVIF", len(data))
            bpp = 8 / (image.shape[0] * image.shape[1])
            print(f"{name} {photo}: ours {len(data) * bpp:.4f} bpp dE {metrics.colour_error(image, ours):.2f} "
                  f"pattern {metrics.patch_pattern(ours):.2f} | AVIF {len(avif_bytes) * bpp:.4f} bpp "
                  f"dE {metrics.colour_error(image, avif):.2f} pattern {metrics.patch_pattern(avif):.2f}")
            rows.append(np.concatenate([centre(a, args.size) for a in (image, ours, avif)], axis=1))
        width = max(r.shape[1] for r in rows)
        grid = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
        out = args.out if len(args.models) == 1 else args.out.with_name(f"{args.out.stem}-{name}{args.out.suffix}")
        Image.fromarray(grid).save(out)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
