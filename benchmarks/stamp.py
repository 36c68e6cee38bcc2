"""Is a model's hatching one fixed stamp? Fit the mean 16x16 residual patch on training photos,
subtract it from Kodak decodes, and print what the metrics make of it.

    python benchmarks/stamp.py --model default --fit 24 --images 24

The stamp is the per-position mean of (decoded - original) over every whole 16x16 cell of
`--fit` training photos (picked with seed 0 from ../shared/data/train, never Kodak), per RGB
channel, less its mean. Printed: its RMS, how alike the images' own mean cells are (cosine to
the stamp), and Kodak metrics before and after subtracting it. If subtracting one fixed
pattern removes most of `metrics.patch_pattern` while LPIPS/DISTS get worse, the metrics (and
the perceptual losses trained on them) are rewarding a content-independent texture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cod_lite
from cod_lite import metrics

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CELL = 16


def mean_cell(x: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (16, 16, 3) mean over whole cells from the top-left."""
    r, c = x.shape[0] // CELL, x.shape[1] // CELL
    return x[: r * CELL, : c * CELL].reshape(r, CELL, c, CELL, 3).mean(axis=(0, 2))


def photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--fit", type=int, default=24, help="training photos the stamp is fitted on")
    parser.add_argument("--images", type=int, default=24, help="first N Kodak images scored")
    args = parser.parse_args()
    train, kodak = photos(DATA / "train"), photos(DATA / "kodak")
    if not train or not kodak:
        print(f"needs ../shared/data/train and ../shared/data/kodak (looked in {DATA})", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    codec = cod_lite.load_model(args.model)

    def roundtrip(path: Path) -> tuple[np.ndarray, np.ndarray]:
        img = np.asarray(Image.open(path).convert("RGB"))
        img = img[: img.shape[0] // CELL * CELL, : img.shape[1] // CELL * CELL]
        return img, np.asarray(codec.decode(codec.encode(img)))

    residuals, own = [], []
    for i in np.random.default_rng(0).choice(len(train), min(args.fit, len(train)), replace=False):
        img, dec = roundtrip(train[i])
        residuals.append(mean_cell(dec.astype(np.float64) - img))
        own.append(mean_cell(dec.astype(np.float64)))
    stamp = np.mean(residuals, axis=0)
    stamp -= stamp.mean(axis=(0, 1))
    cosines = [np.sum((o - o.mean(axis=(0, 1))) * stamp) / np.linalg.norm(o - o.mean(axis=(0, 1))) / np.linalg.norm(stamp) for o in own]
    print(f"{codec.name}: stamp RMS (grey levels, R/G/B) {np.sqrt((stamp**2).mean(axis=(0, 1))).round(2).tolist()}, "
          f"cosine of each fit photo's mean cell to it: mean {np.mean(cosines):.2f}, min {np.min(cosines):.2f}")
    rows: dict[str, list[list[float]]] = {"decoded": [], "decoded - stamp": []}
    for path in kodak[: args.images]:
        img, dec = roundtrip(path)
        tiled = np.tile(stamp, (dec.shape[0] // CELL, dec.shape[1] // CELL, 1))
        fixed = np.clip(np.round(dec - tiled), 0, 255).astype(np.uint8)
        for name, out in (("decoded", dec), ("decoded - stamp", fixed)):
            rows[name].append([metrics.psnr(img, out), metrics.lpips(img, out), metrics.dists(img, out),
                               metrics.blockiness(out), metrics.patch_pattern(out)])
    print(f"Kodak, first {len(rows['decoded'])} images: | | PSNR | LPIPS-Alex | DISTS | blockiness | pattern |")
    for name, values in rows.items():
        m = np.mean(values, axis=0)
        print(f"| {name} | {m[0]:.2f} | {m[1]:.4f} | {m[2]:.4f} | {m[3]:.3f} | {m[4]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
