"""The bundled models next to AVIF, WebP and JPEG XL as a user would compare them, on Kodak or
on the 'everyday' photos (benchmarks/testsets.py), with a markdown table of means.

    python benchmarks/compare.py --set everyday --out docs-table.md
    python benchmarks/compare.py --set kodak --models cod-lite-s-0.125 --limit 4
    python benchmarks/compare.py --images DIR --fid          # any folder; FID/KID is slow

Per image and model, each classical codec gets the lowest quality whose file has at least our
bytes (kodak.lowest_reaching), so it never gets fewer bits than we used; where its lowest quality
needs more, that larger file is used and the `x bits` column shows it. The `AVIF down` and
`JXL down` rows are what a user would do to reach a low rate: code the image downscaled by 1 (not at all), 2, 3 or 4
(Lanczos), each at its lowest quality reaching our bytes, upscale back with Lanczos, and keep the
factor with the best LPIPS-Alex among those that reach our bytes with a quality above the codec's
lowest (so not by overshooting); if none does, the factor whose file is closest above ours.
The `down` column counts the
factors picked. Bits always count the full image's pixels.

Every file size and metric is cached in --cache (keyed by codec library version, quality,
factor and image content; ours by the weights' sha256), so a rerun with new weights recomputes
our rows and only the classical settings not seen before. An entry cached before a column
existed (`pattern`, `colour`) lacks it and is recomputed in full when a run needs it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import PIL
from PIL import Image, features

import cod_lite
from cod_lite import metrics
from cod_lite.errors import CodLiteError
from cod_lite.fileio import atomic_write
from cod_lite.image_io import find_images, load_image

from kodak import DEFAULT_DIR, lowest_reaching  # benchmarks/ is on sys.path when run as a script
from pillow_codecs import round_trip
import testsets

CODECS = {"AVIF": range(0, 101), "WebP": range(0, 101), "JXL": range(0, 101)}  # format -> quality range
DOWNSCALED = ("AVIF", "JXL")
FACTORS = (1, 2, 3, 4)
PICK_BY = "lpips_alex"
OURS = "cod-lite"
# Part of our cache keys: what the encoder sends besides the weights' indices (2: the colour
# transform of cod_lite.colour, 3: its grid of offsets, 4: grid cells from 16 px, 5: grid fitted on region means, 6: 0.05 dE per percent, 2026-12-06), so entries of an older
# encoder are not reused.
ENCODER_VERSION = 6
COLUMNS = {"psnr": ("PSNR", 2), "ms_ssim": ("MS-SSIM", 4), "lpips_alex": ("LPIPS-Alex", 4), "dists": ("DISTS", 4),
           "colour": ("colour dE", 2), "fid": ("FID", 1), "blockiness": ("blockiness", 3), "pattern": ("pattern", 2)}
FID_PATCH = 64
DEFAULT_CACHE = Path(__file__).parent / "results" / "compare" / "cache.json"


def image_metrics(reference: np.ndarray, decoded: np.ndarray) -> dict[str, float]:
    """The per-image columns of the table (LPIPS-VGG is left out: a second VGG pass per image)."""
    return {"psnr": metrics.psnr(reference, decoded), "ms_ssim": metrics.ms_ssim(reference, decoded),
            "lpips_alex": metrics.lpips(reference, decoded, "alex"), "dists": metrics.dists(reference, decoded),
            "colour": metrics.colour_error(reference, decoded),
            **metrics.grid_artefacts(decoded)}


def scaled_round_trip(image: np.ndarray, fmt: str, quality: int, factor: int) -> tuple[bytes, np.ndarray]:
    """Code the image downscaled by `factor` (Lanczos) and upscale the decoding back to full size."""
    if factor == 1:
        return round_trip(image, fmt, quality)
    height, width = image.shape[:2]
    small = Image.fromarray(image).resize((max(1, round(width / factor)), max(1, round(height / factor))), Image.LANCZOS)
    data, out = round_trip(np.asarray(small), fmt, quality)
    return data, np.asarray(Image.fromarray(out).resize((width, height), Image.LANCZOS))


def library_versions() -> dict[str, str]:
    """Part of every classical cache key: another encoder build may give other files."""
    try:
        jxl = importlib.metadata.version("pillow-jxl-plugin")
    except importlib.metadata.PackageNotFoundError:
        sys.exit("compare.py: JPEG XL needs the eval extra: pip install -c constraints.txt '.[eval]'")
    return {"AVIF": f"libavif {features.version('avif')}", "WebP": f"libwebp {features.version('webp')}", "JXL": f"pillow-jxl-plugin {jxl}"}


class Cache:
    """A JSON file of entries (dicts), rewritten atomically after each new value."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else {}

    def get(self, key: str, fields: tuple[str, ...], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        entry = self.entries.get(key, {})
        if not all(f in entry for f in fields):
            entry = self.entries[key] = {**entry, **compute()}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(self.entries, indent=0, sort_keys=True, allow_nan=True).encode(), overwrite=True)
        return entry


def compare_image(image_id: str, image: np.ndarray, models: dict[str, tuple[cod_lite.Codec, str]], cache: Cache,
                  libs: dict[str, str], results: dict[tuple[str, str], list[dict[str, Any]]],
                  decoded: dict[tuple[str, str], list[np.ndarray]] | None) -> None:
    """Append this image's entry (metrics, bytes, ratio to ours, factor) to results[model, codec]."""
    full = ("bytes", *(k for k in COLUMNS if k != "fid"))

    def setting(fmt: str, quality: int, factor: int, fields: tuple[str, ...]) -> dict[str, Any]:
        def compute() -> dict[str, Any]:
            data, out = scaled_round_trip(image, fmt, quality, factor)
            values: dict[str, Any] = {"bytes": len(data)}
            if PICK_BY in fields:
                values[PICK_BY] = metrics.lpips(image, out, "alex")
            if fields == full:
                values.update(image_metrics(image, out))
            return values

        return cache.get(f"{fmt}|{libs[fmt]}|q={quality}|x{factor}|{image_id}", fields, compute)

    def add(name: str, label: str, entry: dict[str, Any], ours: int, make: Callable[[], np.ndarray], **extra: Any) -> None:
        bpp = 8 * entry["bytes"] / (image.shape[0] * image.shape[1])
        results.setdefault((name, label), []).append({**entry, "bpp": bpp, "ratio": entry["bytes"] / ours, **extra})
        if decoded is not None:
            decoded.setdefault((name, label), []).append(make())

    for name, (codec, sha) in models.items():
        def ours_compute() -> dict[str, Any]:
            data = codec.encode(image)
            return {"bytes": len(data), **image_metrics(image, np.asarray(codec.decode(data)))}

        ours = cache.get(f"{OURS}|{name}|{sha}|v{ENCODER_VERSION}|{image_id}", full, ours_compute)
        target = ours["bytes"]
        add(name, OURS, ours, target, lambda: np.asarray(codec.decode(codec.encode(image))))
        for fmt, qualities in CODECS.items():
            size = lambda q, f=1, fmt=fmt: setting(fmt, q, f, ("bytes",))["bytes"]  # noqa: E731
            quality = lowest_reaching(size, qualities, target)
            add(name, fmt, setting(fmt, quality, 1, full), target, lambda f=fmt, q=quality: round_trip(image, f, q)[1])
            if fmt not in DOWNSCALED:
                continue
            tight, reaching = [], []
            for factor in FACTORS:
                q = lowest_reaching(lambda q, f=factor: size(q, f), qualities, target)
                if size(q, factor) >= target:
                    reaching.append((size(q, factor), factor, q))
                    if q > qualities[0] or size(q, factor) == target:
                        tight.append((setting(fmt, q, factor, ("bytes", PICK_BY))[PICK_BY], factor, q))
            _, factor, q = min(tight) if tight else min(reaching)
            add(name, f"{fmt} down", setting(fmt, q, factor, full), target,
                lambda f=fmt, q=q, s=factor: scaled_round_trip(image, f, q, s)[1], factor=factor)


def markdown(title: str, results: dict[tuple[str, str], list[dict[str, Any]]], set_scores: dict[tuple[str, str], float],
             originals: dict[str, float]) -> str:
    keys = [k for k in COLUMNS if k != "fid" or set_scores]
    lines = [title, "", "| model | codec | bpp | x bits | " + " | ".join(COLUMNS[k][0] for k in keys) + " | down |",
             "|---|---|---|---|" + "---|" * len(keys) + "---|"]
    for (name, label), entries in results.items():
        mean = lambda k: float(np.nanmean([e[k] for e in entries]))  # noqa: E731
        cells = [f"{set_scores[name, label]:.1f}" if k == "fid" else f"{mean(k):.{COLUMNS[k][1]}f}" for k in keys]
        factors = [e["factor"] for e in entries if "factor" in e]
        down = " ".join(f"{f}x:{factors.count(f)}" for f in FACTORS if f in factors)
        bpp = float(np.mean([e["bpp"] for e in entries]))
        lines.append(f"| {name} | {label} | {bpp:.4f} | {mean('ratio'):.2f} | " + " | ".join(cells) + f" | {down} |")
    lines += ["", f"Blockiness of the originals: {originals['blockiness']:.3f}; pattern {originals['pattern']:.2f}."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--set", choices=["kodak", *testsets.SETS, "holdout"], default="kodak")
    group.add_argument("--images", type=Path, help="a folder of images instead of a named set")
    parser.add_argument("--models", nargs="*", help="default: every bundled model")
    parser.add_argument("--limit", type=int, help="use the first N images")
    parser.add_argument("--fid", action="store_true", help="also FID over 64x64 patches (slow)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, help="write the markdown table here too")
    args = parser.parse_args()
    try:
        folder = args.images or (DEFAULT_DIR if args.set == "kodak" else testsets.fetch(args.set))
        files = find_images(folder)[: args.limit]
        if not files:
            raise CodLiteError(f"no images in {folder}")
        infos = {m.name: m for m in cod_lite.available_models()}
        offered = (n for n, m in infos.items() if m.origin == "bundled" and m.retired is None)
        names = args.models or sorted(offered, key=lambda n: infos[n].config.nominal_bpp)
        models = {n: (cod_lite.load_model(n), infos[n].weights_sha256[:16]) for n in names}
    except CodLiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    cache, libs = Cache(args.cache), library_versions()
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    decoded: dict[tuple[str, str], list[np.ndarray]] | None = {} if args.fid else None
    references, ids, originals = [], [], []
    for path in files:
        image = load_image(path)
        image_id = f"{path.relative_to(folder).as_posix()}:{hashlib.sha256(image.tobytes()).hexdigest()[:12]}"
        compare_image(image_id, image, models, cache, libs, results, decoded)
        references.append(image if args.fid else None)
        ids.append(image_id)
        originals.append(metrics.grid_artefacts(image))
        print(f"{image_id}: done", file=sys.stderr)
    set_scores: dict[tuple[str, str], float] = {}
    if decoded is not None:
        real = metrics.inception_features(references, FID_PATCH)
        set_id = hashlib.sha256(",".join(ids).encode()).hexdigest()[:12]
        for (name, label), images in decoded.items():
            key = f"fid|{name}|{models[name][1]}|{label}|{libs.get(label.split()[0], '')}|{set_id}"
            set_scores[name, label] = cache.get(key, ("fid",), lambda im=images: metrics.patch_fid_kid(real, im, FID_PATCH))["fid"]
    shas = ", ".join(f"{n} {sha}" for n, (_, sha) in models.items())
    fid_note = f" (FID over their {FID_PATCH}x{FID_PATCH} patches)" if args.fid else ""
    title = (f"{args.images or args.set}: {len(files)} images, means per image{fid_note}. "
             f"Weights sha256: {shas}. Pillow {PIL.__version__}, {', '.join(libs.values())}.")
    baseline = {k: float(np.nanmean([o[k] for o in originals])) for k in originals[0]}
    text = markdown(title, results, set_scores, baseline)
    print(text)
    if args.out:
        atomic_write(args.out, (text + "\n").encode(), overwrite=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
