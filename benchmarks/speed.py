"""Encode/decode time of a model at a given resolution, fp32 eager vs bf16 autocast, side by side.

    python benchmarks/speed.py --official 0.0312 --size 768x512
    python benchmarks/speed.py --model default --size 768x512

Encode = encoder + VQ + packing + container; decode = parsing + unpacking + condition
decoder + one-step denoiser + 8-bit conversion. Official configs use random weights (speed
does not depend on the values). Median of --repeats runs after one warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import numpy as np
import torch

import cod_lite
from cod_lite.codec import Codec
from cod_lite.models.config import official_config
from cod_lite.models.network import CodLiteNet
from cod_lite.weights import weights_digest


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--official", help="official config by bitrate label, e.g. 0.0312 (random weights)")
    group.add_argument("--model", help="model name or weight file")
    parser.add_argument("--size", default="768x512", help="WIDTHxHEIGHT")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = map(int, args.size.lower().split("x"))

    if args.official:
        torch.manual_seed(0)
        net = CodLiteNet(official_config(args.official))
        codec = Codec(net, weights_digest(net.state_dict()))
    else:
        codec = cod_lite.load_model(args.model)
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    params = sum(p.numel() for p in codec.net.parameters()) / 1e6
    print(f"model {codec.name}: {params:.1f}M parameters, {width}x{height}, {args.threads} threads, torch {torch.__version__}")

    variants = {
        "fp32 eager": contextlib.nullcontext,
        "bf16 autocast": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
    }
    results = {}
    for label, ctx in variants.items():
        with ctx():
            data = codec.encode(image)
            enc = median_time(lambda: codec.encode(image), args.repeats)
            dec = median_time(lambda: codec.decode(data), args.repeats)
        results[label] = (enc, dec)
        print(f"{label:14s} encode {enc:7.3f} s   decode {dec:7.3f} s   ({len(data)} bytes)")
    base_enc, base_dec = results["fp32 eager"]
    for label, (enc, dec) in results.items():
        print(f"{label:14s} speed-up vs fp32 eager: encode x{base_enc / enc:.2f}, decode x{base_dec / dec:.2f}")


if __name__ == "__main__":
    main()
