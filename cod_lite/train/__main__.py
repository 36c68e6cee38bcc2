"""`python -m cod_lite.train STAGE --data DIR --out DIR ...`, `... export ...` and `... crops ...`."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from ..errors import exit_status
from ..models.config import ModelConfig
from .data import write_crop_set
from .export import PRECISIONS, export
from .loop import TrainSettings, train
from .stages import STAGES


def main(argv: list[str] | None = None) -> int:
    """Exit status 1 with one line on stderr for bad input (CODLITE_DEBUG=1 shows the traceback)."""
    args = _parser().parse_args(argv)
    return exit_status(lambda: _run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cod_lite.train", description="Train CoD-Lite models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        p = sub.add_parser(stage, help=STAGES[stage])
        p.add_argument("--data", required=True, help="folder of training images (searched recursively)")
        p.add_argument("--out", required=True, help="run folder: checkpoints, train.log; resumed if present")
        for field in dataclasses.fields(TrainSettings):
            if field.name in ("stage", "data", "out"):
                continue
            flag = "--" + field.name.replace("_", "-")
            if field.type in ("bool", bool):
                p.add_argument(flag, action="store_true")
            else:
                kind = {"int": int, "float": float}.get(str(field.type).split(" ")[0], str)
                p.add_argument(flag, type=kind, default=field.default)
        p.add_argument("--name", default="cod-lite-model")
        p.add_argument("--ds", type=int, default=16)
        p.add_argument("--bits", type=int, default=8)
        p.add_argument("--hidden", type=int, default=128)
        p.add_argument("--hidden-x", type=int, default=16)
        p.add_argument("--blocks", type=int, default=8)
        p.add_argument("--cond-blocks", type=int, default=6)
        p.add_argument("--encoder-channels", type=int, default=32)
        p.add_argument("--refine-channels", type=int, default=0, help="> 0: add the seam refiner (see SeamRefiner)")
    e = sub.add_parser("export", help="write a run's EMA weights as a model file for bundling")
    e.add_argument("checkpoint")
    e.add_argument("output")
    e.add_argument("--name", default=None)
    e.add_argument("--precision", choices=sorted(PRECISIONS), default="fp16", help="int8: half the size of fp16 (bundled models)")
    e.add_argument("--force", action="store_true", help="replace OUTPUT (and its .json) if they exist")
    e.add_argument("--refiner-scale", type=float, default=1.0, help="multiply the seam refiner's residual (e.g. 0.6)")
    c = sub.add_parser("crops", help="write a compact set of JPEG crops (to carry a training set to another machine)")
    c.add_argument("src")
    c.add_argument("out", help="new (or empty) folder")
    c.add_argument("--size", type=int, default=256)
    c.add_argument("--max-mb", type=float, default=20.0)
    c.add_argument("--quality", type=int, default=95)
    c.add_argument("--seed", type=int, default=0)
    return parser


def _run(args: argparse.Namespace) -> None:
    if args.command == "crops":
        files, size = write_crop_set(args.src, args.out, size=args.size, max_bytes=int(args.max_mb * 2**20), quality=args.quality, seed=args.seed)
        print(f"{files} crops, {size / 2**20:.1f} MiB in {args.out}")
        return

    if args.command == "export":
        print(export(args.checkpoint, args.output, name=args.name, precision=args.precision, overwrite=args.force, refiner_scale=args.refiner_scale))
        return
    config = ModelConfig(
        name=args.name, ds=args.ds, codebook_bits=args.bits, hidden_size=args.hidden, hidden_size_x=args.hidden_x,
        num_blocks=args.blocks, num_cond_blocks=args.cond_blocks, encoder_channels=args.encoder_channels,
        refine_channels=args.refine_channels,
    )
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    settings = TrainSettings(stage=args.command, **{k: v for k, v in vars(args).items() if k in names})
    print(train(settings, config))


if __name__ == "__main__":
    sys.exit(main())
