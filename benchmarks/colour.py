"""Where a model's colour error comes from: measured, per image and on average, with oracles.

    python benchmarks/colour.py --set holdout --models cod-lite-s-0.125
    python benchmarks/colour.py --images DIR --models cod-lite-s-0.125 cod-lite-s-0.03

Columns (all `metrics.colour_error`, CIELAB dE76 between 16x16 region means, unless named):
- `decoded`: the model's decoding of its own indices, without side information.
- `corrected`: the decoding of the stream `encode` writes, with the colour side information
  (`cod_lite.colour`: transform and grid, each when it pays): what a user gets by default.
- `mean R/G/B`: the decoding's mean minus the original's, per channel, in grey levels.
- `oracle affine`: after the best per-image 3x4 colour transform (least squares on the region
  means, fitted with the original: what side information of 12 numbers could at best recover).
- `tiles 256`: the image coded as independent 256x256 tiles, encoder and decoder (the crop size
  the bundled models were trained on; GroupNorm then normalises over what it saw in training).
- `enc tiles`: only the encoder tiled (indices of 256x256 tiles), the decoder on the whole grid.
- `chroma > 30`: decoded error over the regions whose original chroma is above 30 (saturated
  colours), next to `chroma <= 30`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import cod_lite
from cod_lite import metrics
from cod_lite.image_io import find_images, load_image

import testsets  # benchmarks/ is on sys.path when run as a script
from kodak import DEFAULT_DIR

SATURATED = 30.0


def affine_corrected(reference: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """The decoded region means after the least-squares 3x4 transform onto the original's."""
    a = metrics.box_downscale(decoded, metrics.COLOUR_BLOCK).reshape(-1, 3)
    b = metrics.box_downscale(reference, metrics.COLOUR_BLOCK).reshape(-1, 3)
    design = np.concatenate([a, np.ones((len(a), 1))], 1)
    solution, *_ = np.linalg.lstsq(design, b, rcond=None)
    return np.clip(design @ solution, 0, 255)


def region_errors(reference: np.ndarray, regions: np.ndarray) -> np.ndarray:
    lab_ref = metrics.srgb_to_lab(metrics.box_downscale(reference, metrics.COLOUR_BLOCK).reshape(-1, 3))
    return np.sqrt(((lab_ref - metrics.srgb_to_lab(regions)) ** 2).sum(-1))


TILE = 256


def tiled_indices(codec: cod_lite.Codec, pixels: np.ndarray) -> np.ndarray:
    """The index grid of the whole (padded) image, each TILE x TILE tile quantized on its own."""
    ds, unit = codec.model_config.ds, codec.model_config.size_unit
    h, w = pixels.shape[:2]
    padded = np.pad(pixels, ((0, -(-h // unit) * unit - h), (0, -(-w // unit) * unit - w), (0, 0)), mode="edge")
    out = np.zeros((padded.shape[0] // ds, padded.shape[1] // ds), np.int64)
    for top in range(0, padded.shape[0], TILE):
        for left in range(0, padded.shape[1], TILE):
            tile = padded[top : top + TILE, left : left + TILE]
            out[top // ds : (top + tile.shape[0]) // ds, left // ds : (left + tile.shape[1]) // ds] = codec.quantize(tile)
    return out


def tiled_decode(codec: cod_lite.Codec, indices: np.ndarray, height: int, width: int) -> np.ndarray:
    ds, step = codec.model_config.ds, TILE // codec.model_config.ds
    out = np.zeros((indices.shape[0] * ds, indices.shape[1] * ds, 3), np.uint8)
    for top in range(0, indices.shape[0], step):
        for left in range(0, indices.shape[1], step):
            sub = indices[top : top + step, left : left + step]
            out[top * ds : (top + sub.shape[0]) * ds, left * ds : (left + sub.shape[1]) * ds] = codec.reconstruct(sub, sub.shape[0] * ds, sub.shape[1] * ds)
    return out[:height, :width]


def measure(codec: cod_lite.Codec, pixels: np.ndarray) -> dict[str, float]:
    h, w = pixels.shape[:2]
    decoded = codec.reconstruct(codec.quantize(pixels), h, w)
    errors = region_errors(pixels, metrics.box_downscale(decoded, metrics.COLOUR_BLOCK).reshape(-1, 3))
    chroma = np.hypot(*metrics.srgb_to_lab(metrics.box_downscale(pixels, metrics.COLOUR_BLOCK).reshape(-1, 3))[:, 1:].T)
    shift = decoded.reshape(-1, 3).astype(np.float64).mean(0) - pixels.reshape(-1, 3).astype(np.float64).mean(0)
    return {
        "decoded": float(errors.mean()),
        "corrected": metrics.colour_error(pixels, np.asarray(codec.decode(codec.encode(pixels)))),
        "mean R": float(shift[0]), "mean G": float(shift[1]), "mean B": float(shift[2]),
        "oracle affine": float(region_errors(pixels, affine_corrected(pixels, decoded)).mean()),
        "tiles 256": metrics.colour_error(pixels, tiled_decode(codec, tiled_indices(codec, pixels), h, w)),
        "enc tiles": metrics.colour_error(pixels, codec.reconstruct(tiled_indices(codec, pixels), h, w)),
        f"chroma > {SATURATED:.0f}": float(errors[chroma > SATURATED].mean()) if (chroma > SATURATED).any() else float("nan"),
        f"chroma <= {SATURATED:.0f}": float(errors[chroma <= SATURATED].mean()) if (chroma <= SATURATED).any() else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=("kodak", "everyday", "holdout"), default="holdout")
    parser.add_argument("--images", type=Path, help="any folder instead of --set")
    parser.add_argument("--models", nargs="+", default=["cod-lite-s-0.125"])
    parser.add_argument("--limit", type=int, help="only the first N images")
    parser.add_argument("--per-image", action="store_true")
    args = parser.parse_args()
    if args.images:
        files = find_images(args.images)
    elif args.set == "kodak":
        files = sorted(DEFAULT_DIR.glob("*.png"))
    else:
        files = find_images(testsets.fetch(args.set))
    files = files[: args.limit]
    for name in args.models:
        codec = cod_lite.load_model(name, precision="fp32")
        rows = []
        for path in files:
            row = measure(codec, load_image(path))
            rows.append(row)
            if args.per_image:
                print(f"{Path(path).name:40s} " + " ".join(f"{k} {v:6.2f}" for k, v in row.items()), flush=True)
        print(f"\n{name} on {args.images or args.set} ({len(rows)} images)")
        print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
        print("| " + " | ".join(f"{np.nanmean([r[k] for r in rows]):.2f}" for k in rows[0]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
