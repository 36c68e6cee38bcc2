"""The distortion-perception dial of a multi-step model: one stream per image, decoded with N steps.

    python benchmarks/steps.py --model cod-lite-s-0.008            # Kodak, N = 1 2 4 8 16
    python benchmarks/steps.py --model m.safetensors --images 2 --no-fid --plot /tmp/steps.png

Each image is compressed once; the same stream is then decoded with every N (seed --seed), so
only the decoder changes. Prints a markdown table of the means over the images (bpp, PSNR,
LPIPS-Alex, DISTS, the hatching stamp (pattern, grey levels) and blockiness of the decoded
images, FID over 64x64 patches unless --no-fid, decode seconds per image) and writes
the plot (--plot, default docs/steps.png) when matplotlib is installed, and with --crop-out the
centre 256x256 crop of the first image: original, then each N left to right. Runs on the CPU
with the threads torch is given.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import cod_lite
from cod_lite import bitstream, metrics
from cod_lite.image_io import load_image
from kodak import save_crop

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT.parent / "shared" / "data" / "kodak"
COLUMNS = ("steps", "bpp", "psnr", "lpips_alex", "dists", "pattern", "blockiness", "fid", "decode_s")


def measure(codec: cod_lite.Codec, images: list[np.ndarray], steps_list: list[int], seed: int, fid: bool) -> tuple[list[dict[str, float]], list[np.ndarray]]:
    """(one row of means per N, the first image decoded with each N)."""
    streams = [codec.encode(image) for image in images]
    bpp = float(np.mean([bitstream.bits_per_pixel(len(s), im.shape[1], im.shape[0]) for s, im in zip(streams, images)]))
    real = metrics.inception_features(images) if fid else None
    rows, firsts = [], []
    for steps in steps_list:
        decoded, seconds = [], []
        for stream in streams:
            start = time.perf_counter()
            decoded.append(np.asarray(codec.decode(stream, steps=steps, seed=seed)))
            seconds.append(time.perf_counter() - start)
        artefacts = [metrics.grid_artefacts(d) for d in decoded]
        row = {
            "steps": steps,
            "bpp": bpp,
            "psnr": float(np.mean([metrics.psnr(a, b) for a, b in zip(images, decoded)])),
            "lpips_alex": float(np.mean([metrics.lpips(a, b, "alex") for a, b in zip(images, decoded)])),
            "dists": float(np.mean([metrics.dists(a, b) for a, b in zip(images, decoded)])),
            **{k: float(np.mean([a[k] for a in artefacts])) for k in ("pattern", "blockiness")},
            "fid": metrics.patch_fid_kid(real, decoded)["fid"] if fid else float("nan"),
            "decode_s": float(np.mean(seconds)),
        }
        rows.append(row)
        firsts.append(decoded[0])
        print(" ".join(f"{k}={v:.4g}" for k, v in row.items()), file=sys.stderr)
    return rows, firsts


def table(rows: list[dict[str, float]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append(
            f"| {r['steps']} | {r['bpp']:.4f} | {r['psnr']:.2f} | {r['lpips_alex']:.3f} | {r['dists']:.3f} | "
            f"{r['pattern']:.2f} | {r['blockiness']:.3f} | "
            + ("n/a" if np.isnan(r["fid"]) else f"{r['fid']:.1f}")
            + f" | {r['decode_s']:.2f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, float]], path: Path, title: str) -> bool:
    """PSNR and the perceptual scores against N; False (and a message) without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        print(f"matplotlib is not installed: no plot written to {path} (pip install matplotlib)", file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["steps"] for r in rows]
    names = [("psnr", "PSNR (dB) ↑"), ("lpips_alex", "LPIPS-Alex ↓"), ("dists", "DISTS ↓"), ("pattern", "pattern (grey levels) ↓")]
    if not any(np.isnan(r["fid"]) for r in rows):
        names.append(("fid", "patch FID ↓"))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3))
    for ax, (key, label) in zip(axes, names):
        ax.plot(steps, [r[key] for r in rows], "o-")
        ax.set_xscale("log", base=2)
        ax.set_xticks(steps, [str(s) for s in steps])
        ax.set_xlabel("decoding steps")
        ax.set_title(label)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a multi-step model: name or weight file")
    parser.add_argument("--data", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--images", type=int, default=24, help="use the first N images")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-fid", action="store_true", help="skip patch FID (slow on a CPU)")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "steps.png")
    parser.add_argument("--out", type=Path, help="write the markdown table here too")
    parser.add_argument("--crop-out", type=Path, help="side-by-side crop of the first image: original, then each N")
    args = parser.parse_args()
    files = sorted(args.data.glob("*.png"))[: args.images]
    if not files:
        print(f"no PNG images in {args.data}", file=sys.stderr)
        return 1
    try:
        codec = cod_lite.load_model(args.model)
        for steps in args.steps:
            codec.steps_for(steps)  # a one-step model refuses here, before any work
    except cod_lite.CodLiteError as e:
        print(f"steps.py: {e}", file=sys.stderr)
        return 1
    images = [load_image(f) for f in files]
    rows, firsts = measure(codec, images, args.steps, args.seed, not args.no_fid)
    text = f"{codec.name} on {len(files)} images of {args.data.name}, seed {args.seed}\n\n" + table(rows)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    plot(rows, args.plot, f"{codec.name}: one stream, N decoding steps")
    if args.crop_out:
        save_crop(args.crop_out, [images[0], *firsts])
        print(f"crop of {files[0].name}: original, then N = {', '.join(map(str, args.steps))} -> {args.crop_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
