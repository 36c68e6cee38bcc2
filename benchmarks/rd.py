"""Rate-distortion curves: the bundled models (one point each) against JPEG, WebP, AVIF and JPEG XL.

    python benchmarks/rd.py                                 # 24 Kodak images, every codec, with FID
    python benchmarks/rd.py --images 2 --points 2 --no-fid  # quick check of the whole pipeline
    python benchmarks/rd.py --codecs cod-lite AVIF JXL --data path/to/pngs --out /tmp/rd

Rows are cached in --out/rows.json (keyed by codec, setting, model weights and image names), so
an interrupted or extended run only computes what is missing: adding FID to a --no-fid run
decodes again but reuses the other metrics.

Each classical codec is swept over fixed qualities chosen to span about 0.05-1 bpp on Kodak as
far as it can go (JPEG and JXL bottom out near 0.17-0.2 bpp, WebP near 0.11, AVIF near 0.07). Every setting is
encoded once per image; PSNR, MS-SSIM, LPIPS-Alex and DISTS are means over the images, FID and
KID are over the 64x64 patches of all of them together. Writes rd.csv, rd.md and rd.png to
--out and prints the table and the BD-rate of our models (taken together as one curve, by
rate) against each classical codec on LPIPS-Alex and DISTS; negative means we need fewer bits.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

import cod_lite
from cod_lite import metrics
from cod_lite.bitstream import bits_per_pixel
from cod_lite.image_io import load_image

from bdrate import bd_rate  # benchmarks/ is on sys.path when run as a script
from kodak import DEFAULT_DIR
from pillow_codecs import round_trip

OURS = "cod-lite"
# Mean bpp at the ends, measured on four Kodak images: JPEG 0.19-1.36, WebP 0.15-1.24, AVIF 0.09-1.17, JXL 0.20-1.11.
QUALITIES = {
    "JPEG": (1, 5, 10, 20, 30, 40, 60),
    "WebP": (0, 5, 10, 20, 30, 40, 60),
    "AVIF": (0, 10, 15, 20, 30, 40, 50, 60),
    "JXL": (0, 10, 20, 30, 40, 50, 60, 70),
}
METRICS = {  # column -> name; the table shows those present (all_metrics may add more, the CSV keeps all)
    "psnr": "PSNR",
    "ms_ssim": "MS-SSIM",
    "lpips_alex": "LPIPS-Alex",
    "lpips_vgg": "LPIPS-VGG",
    "dists": "DISTS",
    "fid": "FID",
    "kid": "KID",
}
PLOTTED = ("psnr", "ms_ssim", "lpips_alex", "dists", "fid")
BD_METRICS = ("lpips_alex", "dists")
FID_PATCH = 64
FidFn = Callable[..., dict[str, float]]
RoundTrip = Callable[[np.ndarray], tuple[bytes, np.ndarray]]  # image -> (file bytes, decoded image)


def score(codec: str, setting: str, references: list[np.ndarray], encode: RoundTrip, fid: FidFn | None, *, image_metrics: bool = True) -> dict[str, str | float]:
    """One row: mean bpp and (unless cached already) metrics over the images, and FID/KID over all their decodings."""
    row: dict[str, str | float] = {"codec": codec, "setting": setting}
    decoded = []
    for image in references:
        data, out = encode(image)
        values = {"bpp": bits_per_pixel(len(data), image.shape[1], image.shape[0])}
        values.update(metrics.all_metrics(image, out) if image_metrics else {})
        for key, value in values.items():
            row[key] = row.get(key, 0.0) + value / len(references)
        decoded.append(out)
    if fid is not None:
        result = fid(references, decoded, patch=FID_PATCH)
        row.update(fid=float(result["fid"]), kid=float(result["kid"]))
    print(f"{codec} {setting}: {row['bpp']:.4f} bpp" + (f", LPIPS-Alex {row['lpips_alex']:.4f}" if image_metrics else ""), file=sys.stderr)
    return row


def model_round_trip(name: str) -> RoundTrip:
    """Through a model loaded once for all the images."""
    codec = cod_lite.load_model(name)

    def encode(image: np.ndarray) -> tuple[bytes, np.ndarray]:
        data = codec.encode(image)
        return data, np.asarray(codec.decode(data))

    return encode


def bd_rates(rows: list[dict[str, str | float]]) -> dict[tuple[str, str], str]:
    """(classical codec, metric) -> BD-rate of our models against it, or 'n/a (why)'."""
    column = lambda codec, key: [r[key] for r in rows if r["codec"] == codec]  # noqa: E731
    results = {}
    for fmt in dict.fromkeys(r["codec"] for r in rows if r["codec"] != OURS):
        for key in BD_METRICS:
            try:
                value = bd_rate(column(fmt, "bpp"), column(fmt, key), column(OURS, "bpp"), column(OURS, key))
                results[fmt, key] = f"{value:+.1f}%"
            except ValueError as err:
                results[fmt, key] = f"n/a ({err})"
    return results


def markdown(rows: list[dict[str, str | float]], bd: dict[tuple[str, str], str], images: int) -> str:
    keys = [k for k in METRICS if k in rows[0]]
    lines = [
        f"Rate-distortion on the first {images} images: means over the images"
        + (f", FID and KID over their {FID_PATCH}x{FID_PATCH} patches." if "fid" in keys else "."),
        "",
        "| codec | setting | bpp | " + " | ".join(METRICS[k] for k in keys) + " |",
        "|---|---|---|" + "---|" * len(keys),
    ]
    for row in rows:
        cells = [f"{row[k]:.2f}" if k in ("psnr", "fid") else f"{row[k]:.4f}" for k in keys]
        lines.append(f"| {row['codec']} | {row['setting']} | {row['bpp']:.4f} | " + " | ".join(cells) + " |")
    if bd:
        lines += ["", f"BD-rate of {OURS} (bundled models as one curve) against each codec; negative: fewer bits.", ""]
        lines += ["| anchor | " + " | ".join(METRICS[k] for k in BD_METRICS) + " |", "|---|" + "---|" * len(BD_METRICS)]
        for fmt in dict.fromkeys(f for f, _ in bd):
            lines.append(f"| {fmt} | " + " | ".join(bd[fmt, k] for k in BD_METRICS) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, str | float]], path: Path) -> None:
    """One panel per metric, bpp on a log axis: a line per classical codec, a marker per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in PLOTTED if k in rows[0]]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for fmt in dict.fromkeys(r["codec"] for r in rows if r["codec"] != OURS):
            curve = sorted((r for r in rows if r["codec"] == fmt), key=lambda r: r["bpp"])
            ax.plot([r["bpp"] for r in curve], [r[key] for r in curve], marker="o", markersize=3, label=fmt)
        for row in (r for r in rows if r["codec"] == OURS):
            ax.plot(row["bpp"], row[key], marker="*", markersize=13, linestyle="none", label=row["setting"])
        ax.set_xscale("log")
        ax.set_xlabel("bpp")
        better = "higher" if key in ("psnr", "ms_ssim") else "lower"
        ax.set_title(f"{METRICS[key]} ({better} is better)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DIR, help="folder of PNGs (default: Kodak)")
    parser.add_argument("--images", type=int, default=24, help="use the first N images")
    parser.add_argument("--codecs", nargs="+", choices=[OURS, *QUALITIES], default=[OURS, *QUALITIES])
    parser.add_argument("--points", type=int, help="use only N qualities per classical codec, spread over its sweep")
    parser.add_argument("--no-fid", action="store_true", help="skip FID/KID over patches")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "rd")
    args = parser.parse_args()
    files = sorted(args.data.glob("*.png"))[: args.images]
    if not files:
        print(f"no PNG images in {args.data} (expected Kodak in ../shared/data/kodak next to the project)", file=sys.stderr)
        return 1
    references = [load_image(path) for path in files]
    fid = None
    if not args.no_fid:
        real = functools.cache(lambda: metrics.inception_features(references, FID_PATCH))  # once, and only if a row needs it
        fid = lambda refs, decoded, patch: metrics.patch_fid_kid(real(), decoded, patch)  # noqa: E731
    args.out.mkdir(parents=True, exist_ok=True)
    cache_file = args.out / "rows.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    names = ",".join(path.name for path in files)

    def cached(codec: str, setting: str, version: str, encode: Callable[[], RoundTrip]) -> dict[str, str | float]:
        key = f"{codec}|{setting}|{version}|{names}"
        row = cache.get(key, {})
        if not row or (fid is not None and "fid" not in row):
            new = score(codec, setting, references, encode(), fid if "fid" not in row else None, image_metrics=not row)
            cache[key] = row = {**row, **new}
            cache_file.write_text(json.dumps(cache, indent=1))
        return row if fid is not None else {k: v for k, v in row.items() if k not in ("fid", "kid")}

    rows = []
    if OURS in args.codecs:
        bundled = [m for m in cod_lite.available_models() if m.origin == "bundled"]
        for info in sorted(bundled, key=lambda m: m.config.nominal_bpp):
            rows.append(cached(OURS, info.name, info.weights_sha256[:16], lambda n=info.name: model_round_trip(n)))
    for fmt in (f for f in QUALITIES if f in args.codecs):
        qualities = QUALITIES[fmt]
        if args.points:
            picks = np.linspace(0, len(qualities) - 1, args.points).round().astype(int)
            qualities = tuple(dict.fromkeys(qualities[i] for i in picks))
        for quality in qualities:
            rows.append(cached(fmt, f"q={quality}", "", lambda f=fmt, q=quality: lambda image: round_trip(image, f, q)))
    if not rows:
        print("no codecs to run (no bundled models and no classical codec chosen)", file=sys.stderr)
        return 1
    bd = bd_rates(rows) if OURS in args.codecs else {}
    with open(args.out / "rd.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = markdown(rows, bd, len(files))
    (args.out / "rd.md").write_text(text + "\n")
    plot(rows, args.out / "rd.png")
    print(text)
    print(f"wrote rd.csv, rd.md and rd.png to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
