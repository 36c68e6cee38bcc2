"""Seconds per training step of the real one-step objective, per speed option, in one run.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/train_speed.py --threads 1

Every option runs `cod_lite.train.loop.train` itself (the loop the bundled models are trained
with: data, forward, backward, clipping, AdamW, EMA) from the same bundled weights (--init, default
the default model), the same seed and so the same crops, with L1 + LPIPS-VGG + 0.5 LPIPS-Alex,
decoder-only (--freeze-encoder, how the bundled models are trained now) and full. The first
--warmup steps (compilation, allocation) are dropped; the table gives the median s/step of the
rest, its ratio to fp32 eager of the same objective, and how far the first step's losses (same
weights, same batch) move from fp32's: the numerical cost of the option. `--stage pretrain`
times the rectified-flow objective instead (MSE only, no perceptual terms).

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/train_speed.py --threads 1 --stage pretrain --full-only --batch-size 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from cod_lite.train.loop import TrainSettings, train
from cod_lite.weights import load_weights
from cod_lite.zoo import resolve

OPTIONS = {  # name -> TrainSettings fields
    "fp32 eager": {"precision": "fp32"},  # explicit: the loop's default (auto) is bf16 where native
    "bf16 autocast": {"precision": "bf16"},
    "channels_last": {"precision": "fp32", "channels_last": True},
    "bf16 + channels_last": {"precision": "bf16", "channels_last": True},
    "compile": {"precision": "fp32", "compile": True},
    "compile + bf16": {"compile": True, "precision": "bf16"},
    "compile + bf16 + channels_last": {"compile": True, "precision": "bf16", "channels_last": True},
}


LOSSES = {"onestep": {"l1": 1.0, "lpips_vgg": 1.0, "lpips_alex": 0.5}, "pretrain": {"l1": 0.0, "lpips_vgg": 0.0, "lpips_alex": 0.0}}


def run(init: Path, data: str, out: Path, freeze: bool, extra: dict, args: argparse.Namespace) -> list[dict]:
    """The train.log lines of one short run (one line per step)."""
    config, _, _ = load_weights(init)
    settings = TrainSettings(
        stage=args.stage, data=data, out=str(out), steps=args.warmup + args.steps, batch_size=args.batch_size, crop=args.crop,
        lr=1e-4, warmup=1, ema_decay=0.995, init=str(init), log_every=1, save_every=10**9, restart_every=0,
        freeze_encoder=freeze, device="cpu", **LOSSES[args.stage], **extra,
    )
    train(settings, config)
    return [json.loads(line) for line in (out / "train.log").read_text().splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", default="default", help="model name or weight file to start from")
    parser.add_argument("--data", default=str(Path(__file__).parents[1] / ".." / "shared" / "data" / "train"))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per option")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps per option")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stage", choices=sorted(LOSSES), default="onestep")
    parser.add_argument("--only", action="append", help="run only options whose name contains this (repeatable)")
    parser.add_argument("--full-only", action="store_true", help="skip the decoder-only objective")
    parser.add_argument("--frozen-only", action="store_true", help="skip the full objective")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    init = resolve(args.init)
    options = {k: v for k, v in OPTIONS.items() if not args.only or any(o in k for o in args.only)}
    modes = [m for m, skip in (("decoder-only", args.full_only), ("full", args.frozen_only)) if not skip]
    objective = "L1 + LPIPS-VGG + 0.5 LPIPS-Alex" if args.stage == "onestep" else "rectified-flow MSE"
    print(f"{init.name}, {args.batch_size}x{args.crop}x{args.crop} crops, {args.stage}: {objective}, "
          f"{args.threads} thread(s), torch {torch.__version__}; median of {args.steps} steps after {args.warmup}")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            print(f"\n{mode}:\n{'option':32} {'s/step':>8} {'vs fp32':>8}  first-step loss deltas vs fp32 (total, lpips_vgg, lpips_alex, l1)")
            reference = None
            for name, extra in options.items():
                log = run(init, args.data, Path(tmp) / f"{mode}-{len(list(Path(tmp).iterdir()))}", mode == "decoder-only", extra, args)
                seconds = statistics.median(r["s_step"] for r in log[args.warmup:])
                first = log[0]
                if reference is None and name == "fp32 eager":
                    reference = (seconds, first)
                ratio = f"{reference[0] / seconds:7.2f}x" if reference else "    n/a"
                deltas = ", ".join(f"{first[k] - reference[1][k]:+.5f}" for k in ("total", "lpips_vgg", "lpips_alex", "l1") if k in first) if reference else ""
                print(f"{name:32} {seconds:8.3f} {ratio}  {deltas}", flush=True)


if __name__ == "__main__":
    main()
