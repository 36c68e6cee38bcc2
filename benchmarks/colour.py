"""Where a model's colour error comes from: measured, per image and on average, with oracles.

    python benchmarks/colour.py --set holdout --models cod-lite-s-0.125
    python benchmarks/colour.py --images DIR --models cod-lite-s-0.125 cod-lite-s-0.03

Columns (all `metrics.colour_error`, CIELAB dE76 between 16x16 region means, unless named):
- `decoded`: the model's decoding of its own indices (what a user gets).
- `mean R/G/B`: the decoding's mean minus the original's, per channel, in grey levels.
- `oracle affine`: after the best per-image 3x4 colour transform (least squares on the region
  means, fitted with the original: what side information of 12 numbers could at best recover).
- `no VQ`: the decoder fed the encoder's continuous latent instead of its nearest codewords
  (what the codebook costs: if this is low, the indices cannot carry the hue).
- `chroma > 30`: decoded error over the regions whose original chroma is above 30 (saturated
  colours), next to `chroma <= 30`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import cod_lite
from cod_lite import metrics
from cod_lite.image_io import find_images, load_image
from cod_lite.models.network import to_uint8

import testsets  # benchmarks/ is on sys.path when run as a script
from kodak import DEFAULT_DIR

SATURATED = 30.0


def affine_corrected(reference: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """The decoded region means after the least-squares 3x4 transform onto the original's."""
    a = metrics.box_downscale(decoded, metrics.COLOUR_BLOCK).reshape(-1, 3)
    b = metrics.box_downscale(reference, metrics.COLOUR_BLOCK).reshape(-1, 3)
    design = np.concatenate([a, np.ones((len(a), 1))], 1)
    solution, *_ = np.linalg.lstsq(design, b, rcond=None)
    return design @ solution


def region_errors(reference: np.ndarray, regions: np.ndarray) -> np.ndarray:
    lab_ref = metrics.srgb_to_lab(metrics.box_downscale(reference, metrics.COLOUR_BLOCK).reshape(-1, 3))
    return np.sqrt(((lab_ref - metrics.srgb_to_lab(regions)) ** 2).sum(-1))


@torch.inference_mode()
def without_vq(codec: cod_lite.Codec, pixels: np.ndarray) -> np.ndarray:
    """Decode the continuous encoder output (no nearest-codeword step), exact fp32 network."""
    net, unit = codec.net, codec.model_config.size_unit
    h, w = pixels.shape[:2]
    ph, pw = -(-h // unit) * unit, -(-w // unit) * unit
    padded = np.pad(pixels, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    x = torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255
    codec_net = net.y_embedder
    cond = codec_net.decoder(codec_net.encoder(x))
    out = net.denoise(torch.zeros(1, 3, ph, pw), None, cond)
    return to_uint8(out)[0, :h, :w].numpy()


def measure(codec: cod_lite.Codec, pixels: np.ndarray) -> dict[str, float]:
    h, w = pixels.shape[:2]
    decoded = codec.reconstruct(codec.quantize(pixels), h, w)
    errors = region_errors(pixels, metrics.box_downscale(decoded, metrics.COLOUR_BLOCK).reshape(-1, 3))
    chroma = np.hypot(*metrics.srgb_to_lab(metrics.box_downscale(pixels, metrics.COLOUR_BLOCK).reshape(-1, 3))[:, 1:].T)
    shift = decoded.reshape(-1, 3).astype(np.float64).mean(0) - pixels.reshape(-1, 3).astype(np.float64).mean(0)
    return {
        "decoded": float(errors.mean()),
        "mean R": float(shift[0]), "mean G": float(shift[1]), "mean B": float(shift[2]),
        "oracle affine": float(region_errors(pixels, affine_corrected(pixels, decoded)).mean()),
        "no VQ": metrics.colour_error(pixels, without_vq(codec, pixels)),
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
