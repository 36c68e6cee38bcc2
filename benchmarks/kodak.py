"""Bundled models on Kodak next to AVIF, WebP and JPEG at the same or a higher bitrate.

    python benchmarks/kodak.py                       # every bundled model, ../shared/data/kodak
    python benchmarks/kodak.py --models cod-lite-s-0.125 --images 4 --crop-out docs/kodak_crop.png

For each image and model, each classical codec gets the lowest quality setting whose file is
at least as large as ours (per image), so it is never given fewer bits than we used. Where
even its lowest quality needs more bits, that larger file is used and the table says so
(column `bpp`). Prints a markdown table (means over the images) and writes it with --out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

import cod_lite
from cod_lite import metrics
from cod_lite.image_io import load_image

from pillow_codecs import round_trip  # benchmarks/ is on sys.path when run as a script

DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kodak"
CLASSICAL = {"AVIF": range(0, 101), "WebP": range(0, 101), "JPEG": range(1, 96)}  # format -> quality range


def lowest_reaching(size_of: Callable[[int], int], qualities: Sequence[int], min_bytes: int) -> int:
    """Lowest quality whose file has at least min_bytes, by bisection (file size grows with
    quality); the highest quality if none reaches it. size_of(quality) -> file bytes."""
    lo, hi = 0, len(qualities) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if size_of(qualities[mid]) >= min_bytes:
            hi = mid
        else:
            lo = mid + 1
    return qualities[lo]


def match_bits(image: np.ndarray, fmt: str, min_bytes: int) -> tuple[bytes, np.ndarray]:
    """The round trip at the lowest quality whose file has at least min_bytes."""
    quality = lowest_reaching(lambda q: len(round_trip(image, fmt, q)[0]), CLASSICAL[fmt], min_bytes)
    return round_trip(image, fmt, quality)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--models", nargs="*", help="default: every bundled model")
    parser.add_argument("--images", type=int, default=24, help="use the first N images")
    parser.add_argument("--out", type=Path, help="write the markdown table here too")
    parser.add_argument("--crop-out", type=Path, help="side-by-side crop: original / ours / AVIF")
    args = parser.parse_args()
    files = sorted(args.data.glob("*.png"))[: args.images]
    if not files:
        print(f"no Kodak images in {args.data} (expected ../shared/data/kodak next to the project)", file=sys.stderr)
        return 1
    names = args.models or [m.name for m in cod_lite.available_models() if m.origin == "bundled"]
    rows = []
    for name in names:
        codec = cod_lite.load_model(name)
        sums: dict[str, dict[str, float]] = {}
        for path in files:
            image = load_image(path)
            pixels = image.shape[0] * image.shape[1]
            data = codec.encode(image)
            results = {name: (data, np.asarray(codec.decode(data)))}
            for fmt in CLASSICAL:
                results[fmt] = match_bits(image, fmt, len(data))
            for label, (blob, decoded) in results.items():
                values = {"bpp": 8 * len(blob) / pixels, **metrics.all_metrics(image, decoded),
                          **metrics.grid_artefacts(decoded)}
                acc = sums.setdefault(label, {})
                for key, value in values.items():
                    acc[key] = acc.get(key, 0.0) + value / len(files)
            if args.crop_out and path == files[0]:
                bpp = {label: 8 * len(results[label][0]) / pixels for label in (name, "AVIF")}
                save_crop(args.crop_out, [image, results[name][1], results["AVIF"][1]],
                          ["original", f"{name}: {bpp[name]:.3f} bpp", f"AVIF: {bpp['AVIF']:.3f} bpp"])
            print(f"{name} {path.name}: {8 * len(data) / pixels:.4f} bpp", file=sys.stderr)
        for label, acc in sums.items():
            rows.append((name, label, acc))
    table = [
        "# Kodak against classical codecs",
        "",
        f"Kodak, first {len(files)} images, means. Classical codecs get at least our bytes per image "
        f"(`python benchmarks/kodak.py --out docs/kodak.md`).",
        "",
        "| model | codec | bpp | PSNR | MS-SSIM | LPIPS-Alex | DISTS | colour dE | blockiness | pattern |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label, acc in rows:
        table.append(
            f"| {name} | {'cod-lite' if label == name else label} | {acc['bpp']:.4f} | {acc['psnr']:.2f} | "
            f"{acc['ms_ssim']:.4f} | {acc['lpips_alex']:.4f} | {acc['dists']:.4f} | {acc['colour']:.2f} | {acc['blockiness']:.3f} | "
            f"{acc['pattern']:.2f} |"
        )
    originals = [metrics.grid_artefacts(load_image(path)) for path in files]
    blockiness, pattern = (np.mean([o[k] for o in originals]) for k in ("blockiness", "pattern"))
    table += ["", f"Blockiness of the originals: {blockiness:.3f} (1: the 16-px grid does not stand out); "
                  f"pattern {pattern:.2f} (grey levels repeated in every 16-px patch)."]
    text = "\n".join(table)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def save_crop(path: Path, images: Sequence[np.ndarray], captions: Sequence[str], size: int = 256) -> None:
    """The centre size x size crop of each image (all of one size), side by side, left to right,
    each captioned underneath (what it is, its bits per pixel)."""
    from PIL import ImageDraw

    h, w = images[0].shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    tiles = [a[top : top + size, left : left + size] for a in images]
    sheet = Image.new("RGB", (size * len(tiles), size + 20), "white")
    sheet.paste(Image.fromarray(np.concatenate(tiles, axis=1)), (0, 0))
    draw = ImageDraw.Draw(sheet)
    for i, caption in enumerate(captions):
        draw.text((i * size + 6, size + 4), caption, fill="black")
    sheet.save(path)


if __name__ == "__main__":
    sys.exit(main())
