"""Tiled vs untiled inference on a real photo, and the peak memory of a big image.

    python benchmarks/tiling.py compare --model default --image /work/shared/data/kodak/kodim01.png --scale 3 --max-memory 1G
    python benchmarks/tiling.py peak --model default --image /work/shared/data/kodak/kodim01.png --size 7680x4320

`compare` upscales the photo (bicubic), then reports how far a tiling budget moves the results
from the untiled pass: index agreement, the decoder alone (untiled indices decoded both ways) and
the whole round trip. `peak` writes the photo resized to --size as a PNG and runs `codlite
compress` and `codlite decompress` on it in child processes, reporting each one's peak RSS
(getrusage of the child) and wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import cod_lite
from cod_lite import tiling
from cod_lite.metrics import psnr

UNTILED = 1 << 50


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def compare(args: argparse.Namespace) -> None:
    photo = Image.open(args.image).convert("RGB")
    photo = photo.resize((photo.width * args.scale, photo.height * args.scale), Image.BICUBIC)
    pixels = np.asarray(photo)
    height, width = pixels.shape[:2]
    untiled = cod_lite.load_model(args.model, max_memory=UNTILED)
    tiled = cod_lite.load_model(args.model, max_memory=args.max_memory)
    config = untiled.model_config
    print(
        f"{args.model} on {Path(args.image).name} x{args.scale} = {width}x{height}; budget {tiled.max_memory / 2**30:.2f} GiB; "
        f"untiled estimates: quantize {tiling.quantize_bytes(config, height, width) / 2**30:.2f} GiB, "
        f"reconstruct {tiling.reconstruct_bytes(config, height, width) / 2**30:.2f} GiB"
    )
    ref_idx, t_ref_q = timed(untiled.quantize, pixels)
    idx, t_q = timed(tiled.quantize, pixels)
    ref_out, t_ref_r = timed(untiled.reconstruct, ref_idx, height, width)
    dec_out, t_r = timed(tiled.reconstruct, ref_idx, height, width)
    trip_out = tiled.reconstruct(idx, height, width)
    print(f"indices agree: {100 * (idx == ref_idx).mean():.2f}% of {idx.size}")
    for label, out in (("decoder only (same indices)", dec_out), ("round trip (tiled both ways)", trip_out)):
        diff = np.abs(out.astype(np.int16) - ref_out.astype(np.int16))
        print(f"{label}: max |diff| {diff.max()}, mean {diff.mean():.4f}, pixels off by >1: {100 * (diff > 1).mean():.3f}%")
    print(f"PSNR vs the photo: untiled {psnr(ref_out, pixels):.3f} dB, tiled {psnr(trip_out, pixels):.3f} dB")
    print(f"seconds: quantize untiled {t_ref_q:.1f} / tiled {t_q:.1f}; reconstruct untiled {t_ref_r:.1f} / tiled {t_r:.1f}")


def child_peak(command: list[str]) -> tuple[int, float]:
    """Peak RSS (bytes) and wall time of one child process; raises if it fails."""
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed with exit code {process.returncode}")
    return usage.ru_maxrss * 1024, time.perf_counter() - start


def peak(args: argparse.Namespace) -> None:
    width, height = map(int, args.size.lower().split("x"))
    codlite = [sys.executable, "-c", "from cod_lite_cli.main import cli; cli()"]
    with tempfile.TemporaryDirectory() as folder:
        source, stream, back = (Path(folder) / name for name in ("big.png", "big.cod", "back.png"))
        Image.open(args.image).convert("RGB").resize((width, height), Image.BICUBIC).save(source)
        budget = ["--max-memory", args.max_memory]
        enc = child_peak([*codlite, "compress", str(source), str(stream), "-m", args.model, *budget])
        dec = child_peak([*codlite, "decompress", str(stream), str(back), "-m", args.model, *budget])
    for label, (rss, seconds) in (("compress", enc), ("decompress", dec)):
        print(f"{label:10s} {width}x{height} --max-memory {args.max_memory}: peak RSS {rss / 2**30:.2f} GiB ({rss / 1e9:.2f} GB), {seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("compare", "peak"):
        p = sub.add_parser(name)
        p.add_argument("--model", default="default")
        p.add_argument("--image", required=True, help="a real photo")
        p.add_argument("--max-memory", default=f"{tiling.DEFAULT_MAX_MEMORY >> 30}G")
    sub.choices["compare"].add_argument("--scale", type=int, default=3)
    sub.choices["peak"].add_argument("--size", default="7680x4320", help="WIDTHxHEIGHT")
    args = parser.parse_args()
    compare(args) if args.mode == "compare" else peak(args)


if __name__ == "__main__":
    main()
