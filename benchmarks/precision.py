"""Does a fast path keep the quality guarantee? Exact fp32 against it, encode + decode, per model, on Kodak.

    python benchmarks/precision.py                       # the 3 bundled models + official 0.0312 (random)
    python benchmarks/precision.py --model default --images 6
    python benchmarks/precision.py --precision auto      # what this machine runs by default

The fast path is `--precision` (default bf16; `auto` is bf16 or, without native bf16, the fast
path in fp32).

The guarantee (docs/performance.md): against the fp32 path, on every image of the set, a fast
path's decoded images may differ by at most 0.05 dB mean PSNR (against the original), 0.002
mean LPIPS-Alex and 0.002 mean DISTS, and no image may lose more than 0.2 dB PSNR. Two cases
per model:

- decode: the fp32 stream decoded by the fast decoder (same indices);
- end to end: the image encoded and decoded by the fast path; the encoder may pick other indices, so
  the stream's size must also stay within 1 % of the fp32 stream's (summed over the set).

The official 0.0312 config runs with seeded random weights: a speed/shape case, its quality
numbers say only how far the fast path moves a network of that size. Metrics: cod_lite.metrics.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import cod_lite
from cod_lite import metrics
from cod_lite.codec import Codec
from cod_lite.image_io import find_images, load_image
from cod_lite.models.config import official_config
from cod_lite.models.network import CodLiteNet
from cod_lite.weights import weights_digest

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
BUNDLED = ("cod-lite-s-0.03", "cod-lite-s-0.125", "cod-lite-s-0.5")
MAX_PSNR_MEAN, MAX_LPIPS_MEAN, MAX_DISTS_MEAN, MAX_PSNR_IMAGE, MAX_BPP_CHANGE = 0.05, 0.002, 0.002, 0.2, 0.01


@dataclass
class Scores:
    psnr: list[float] = field(default_factory=list)
    lpips: list[float] = field(default_factory=list)
    dists: list[float] = field(default_factory=list)
    bytes: int = 0

    def add(self, original: np.ndarray, decoded: np.ndarray, size: int) -> None:
        self.psnr.append(metrics.psnr(original, decoded))
        self.lpips.append(metrics.lpips(original, decoded, "alex"))
        self.dists.append(metrics.dists(original, decoded))
        self.bytes += size


def codecs(model: str, precision: str) -> tuple[str, Codec, Codec]:
    """(label, exact fp32 codec, fast codec) over one shared network (neither path changes it)."""
    if model.startswith("official:"):
        torch.manual_seed(0)
        net = CodLiteNet(official_config(model.removeprefix("official:")))
        digest = weights_digest(net.state_dict())
        return f"official {model.removeprefix('official:')} (random)", Codec(net, digest, precision="fp32"), Codec(net, digest, precision=precision)
    exact = cod_lite.load_model(model, precision="fp32")
    return exact.name, exact, Codec(exact.net, exact.weights_sha256, exact.path, prior=exact.prior, precision=precision)


def verdicts(base: Scores, other: Scores, check_bpp: bool) -> list[tuple[str, float, float, bool]]:
    """(bound, measured, limit, passed) for one case."""
    drops = [b - o for b, o in zip(base.psnr, other.psnr)]
    rows = [
        ("|d mean PSNR| dB", abs(statistics.fmean(base.psnr) - statistics.fmean(other.psnr)), MAX_PSNR_MEAN),
        ("|d mean LPIPS-Alex|", abs(statistics.fmean(base.lpips) - statistics.fmean(other.lpips)), MAX_LPIPS_MEAN),
        ("|d mean DISTS|", abs(statistics.fmean(base.dists) - statistics.fmean(other.dists)), MAX_DISTS_MEAN),
        ("worst image PSNR drop dB", max(drops), MAX_PSNR_IMAGE),
    ]
    if check_bpp:
        rows.append(("|d bpp| / bpp", abs(other.bytes - base.bytes) / base.bytes, MAX_BPP_CHANGE))
    return [(name, value, limit, value <= limit) for name, value, limit in rows]


def run_model(model: str, images: list[Path], precision: str) -> bool:
    label, exact, fast = codecs(model, precision)
    name = fast.precision
    fp32, dec16, e2e16 = Scores(), Scores(), Scores()
    agree, cells, pixels = 0, 0, 0
    start = time.perf_counter()
    for path in images:
        original = load_image(path)
        s32, s16 = exact.encode(original), fast.encode(original)
        i32, _, _ = exact.decode_indices(s32)
        i16, _, _ = fast.decode_indices(s16)
        agree += int((i32 == i16).sum())
        cells += i32.size
        pixels += original.shape[0] * original.shape[1]
        fp32.add(original, np.asarray(exact.decode(s32)), len(s32))
        dec16.add(original, np.asarray(fast.decode(s32)), len(s32))
        e2e16.add(original, np.asarray(fast.decode(s16)), len(s16))
    print(f"\n== {label}: {len(images)} images, {time.perf_counter() - start:.0f} s; {name} encoder picks the fp32 index for {100 * agree / cells:.2f} % of cells")
    print(f"   {'path':24s} {'bpp':>7s} {'PSNR':>7s} {'LPIPS-A':>8s} {'DISTS':>7s}")
    for row, s in (("fp32 (exact)", fp32), (f"{name} decode", dec16), (f"{name} encode + decode", e2e16)):
        bpp = 8 * s.bytes / pixels
        print(f"   {row:24s} {bpp:7.4f} {statistics.fmean(s.psnr):7.3f} {statistics.fmean(s.lpips):8.4f} {statistics.fmean(s.dists):7.4f}")
    passed = True
    for case, other, check_bpp in (("decode (same indices)", dec16, False), ("encode + decode", e2e16, True)):
        rows = verdicts(fp32, other, check_bpp)
        passed_case = all(ok for *_, ok in rows)
        print(f"   {case}: {'PASS' if passed_case else 'FAIL'}")
        for name, value, limit, ok in rows:
            print(f"      {name:26s} {value:9.4f}  (limit {limit})  {'PASS' if ok else 'FAIL'}")
        passed &= passed_case
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="model name, or official:LABEL (repeatable; default: bundled + official:0.0312)")
    parser.add_argument("--kodak", type=Path, default=KODAK, help="image folder (default: shared/data/kodak)")
    parser.add_argument("--images", type=int, default=None, help="only the first N images (the guarantee needs all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="bf16", choices=("bf16", "auto"), help="the fast path to judge (default bf16)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = find_images(args.kodak)[: args.images]
    models = args.model or [*BUNDLED, "official:0.0312"]
    print(f"exact fp32 vs precision={args.precision} on {len(images)} images of {args.kodak}; torch {torch.__version__}, {args.threads} thread(s)")
    results = {m: run_model(m, images, args.precision) for m in models}
    print("\nsummary: " + ", ".join(f"{m} {'PASS' if ok else 'FAIL'}" for m, ok in results.items()))


if __name__ == "__main__":
    main()
