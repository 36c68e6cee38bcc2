"""ONNX Runtime against the exact torch network: the quality guarantee (docs/performance.md) on
Kodak and speed side by side, in one run.

    python benchmarks/onnx_backend.py --kodak ../shared/data/kodak --model default --model official:0.0312 --speed

Quality, per model, all images: the indices the ONNX encoder picks against the exact fp32 torch
encoder's, and the end-to-end result (ONNX encode + decode against torch fp32 encode + decode):
mean PSNR, LPIPS-Alex and DISTS differences, the worst image's PSNR drop, bytes. `official:RATE`
runs that configuration with seeded random weights (a shape and speed case). Speed: encoder and
decoder networks at 768x512 and 1920x1024, the torch default path (`precision="auto"`) and ONNX
Runtime, median of --repeats, same threads.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import cod_lite
from cod_lite import metrics
from cod_lite.codec import Codec
from cod_lite.image_io import find_images, load_image
from cod_lite.models.config import official_config
from cod_lite.models.network import CodLiteNet
from cod_lite.weights import save_weights


def codecs(name: str, folder: Path) -> tuple[Codec, Codec, Codec]:
    """(exact fp32, torch default, onnxruntime) codecs of one model."""
    if name.startswith("official:"):
        torch.manual_seed(0)
        config = official_config(name.split(":", 1)[1])
        path = save_weights(folder / "official.safetensors", config, CodLiteNet(config).state_dict())
    else:
        path = cod_lite.zoo.resolve(name)
    return (cod_lite.load_model(path, precision="fp32"), cod_lite.load_model(path), cod_lite.load_model(path, backend="onnxruntime"))


def quality(name: str, exact: Codec, runtime: Codec, images: list[Path]) -> None:
    rows = []
    for path in images:
        image = load_image(path)
        ours, theirs = runtime.encode(image), exact.encode(image)
        agree = float((runtime.decode_indices(ours)[0] == exact.decode_indices(theirs)[0]).mean())
        a, b = np.asarray(runtime.decode(ours)), np.asarray(exact.decode(theirs))
        rows.append((agree, metrics.psnr(image, a) - metrics.psnr(image, b), metrics.lpips(image, a, "alex") - metrics.lpips(image, b, "alex"),
                     metrics.dists(image, a) - metrics.dists(image, b), len(ours) - len(theirs), len(theirs)))
    agree, dpsnr, dlpips, ddists, dbytes, total = (np.array(c) for c in zip(*rows))
    verdict = "PASS" if abs(dpsnr.mean()) <= 0.05 and abs(dlpips.mean()) <= 0.002 and abs(ddists.mean()) <= 0.002 and dpsnr.min() >= -0.2 else "FAIL"
    print(f"| {name} | {100 * agree.mean():.2f} % | {dpsnr.mean():+.4f} dB | {dlpips.mean():+.4f} | {ddists.mean():+.4f} | "
          f"{dpsnr.min():+.3f} dB | {100 * dbytes.sum() / total.sum():+.2f} % | {verdict} |", flush=True)


def speed(name: str, default: Codec, runtime: Codec, repeats: int) -> None:
    for width, height in ((768, 512), (1920, 1024)):
        x = torch.rand(1, 3, height, width)
        times = {}
        for label, codec in (("torch default", default), ("onnxruntime", runtime)):
            with torch.inference_mode():
                indices = codec._quantize(x)
                codec._reconstruct(indices)  # warm-up
                times[label] = [median(lambda: codec._quantize(x), repeats), median(lambda: codec._reconstruct(indices), repeats)]
        (te, td), (oe, od) = times["torch default"], times["onnxruntime"]
        print(f"| {name} | {width}x{height} | {1e3 * te:.0f} / {1e3 * td:.0f} ms | {1e3 * oe:.0f} / {1e3 * od:.0f} ms | "
              f"x{te / oe:.2f} / x{td / od:.2f} |", flush=True)


def median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kodak", type=Path, required=True)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = find_images(args.kodak)[: args.images]
    print(f"{len(images)} images, {args.threads} threads, torch {torch.__version__}")
    print("| model | indices agree | d mean PSNR | d LPIPS-Alex | d DISTS | worst image | d bytes | verdict |\n|---|---|---|---|---|---|---|---|")
    speeds = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.model:
            exact, default, runtime = codecs(name, Path(tmp))
            if images:
                quality(name, exact, runtime, images)
            speeds.append((name, default, runtime))
        if args.speed:
            print("\n| model | size | torch default encoder / decoder | onnxruntime | x (torch / onnxruntime) |\n|---|---|---|---|---|")
            for name, default, runtime in speeds:
                speed(name, default, runtime, args.repeats)


if __name__ == "__main__":
    main()
