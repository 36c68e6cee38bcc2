"""`python -m cod_lite.train STAGE --data DIR --out DIR ...`, `... export ...` and `... crops ...`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..errors import exit_status
from ..models.config import ModelConfig
from ..weights import read_config
from .data import write_crop_set
from .export import PRECISIONS, export
from .loop import TrainSettings, train
from .objectives import STAGES


def main(argv: list[str] | None = None) -> int:
    """Exit status 1 with one line on stderr for bad input (CODLITE_DEBUG=1 shows the traceback)."""
    args = _parser().parse_args(argv)
    return exit_status(lambda: _run(args), prog="cod_lite.train")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cod_lite.train", description="Train CoD-Lite models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        p = sub.add_parser(stage, help=STAGES[stage].__doc__)
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
        arch = p.add_argument_group("architecture (default: the resumed run's, else the --init file's, else the small defaults)")
        for dest, (kind, _, help_text) in _ARCH.items():
            arch.add_argument("--" + dest.replace("_", "-"), type=kind, default=None, help=help_text)
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


# argparse dest -> (type, the ModelConfig field it sets, help)
_ARCH = {"name": (str, "name", None), "ds": (int, "ds", None), "bits": (int, "codebook_bits", None),
         "hidden": (int, "hidden_size", None), "hidden_x": (int, "hidden_size_x", None), "blocks": (int, "num_blocks", None),
         "cond_blocks": (int, "num_cond_blocks", None), "encoder_channels": (int, "encoder_channels", None),
         "refine_channels": (int, "refine_channels", "> 0: add the seam refiner (see SeamRefiner)")}
# A new model without --init: small enough to train on a CPU.
_SMALL = ModelConfig(name="cod-lite-model", hidden_size=128, hidden_size_x=16, num_blocks=8, num_cond_blocks=6, encoder_channels=32)


def _config(args: argparse.Namespace) -> ModelConfig:
    """Continuing a model keeps its architecture unless a flag changes it: a forgotten flag would
    otherwise build another network and load only the tensors whose shapes happen to match."""
    resumed = Path(args.out) / "last.safetensors"
    if resumed.exists():
        base = read_config(resumed)
    elif args.init:
        base = read_config(args.init)
    else:
        base = _SMALL
    changes = {field: getattr(args, dest) for dest, (_, field, _) in _ARCH.items() if getattr(args, dest) is not None}
    return dataclasses.replace(base, **changes)


def _run(args: argparse.Namespace) -> None:
    if args.command == "crops":
        files, size = write_crop_set(args.src, args.out, size=args.size, max_bytes=int(args.max_mb * 2**20), quality=args.quality, seed=args.seed)
        print(f"{files} crops, {size / 2**20:.1f} MiB in {args.out}")
        return

    if args.command == "export":
        print(export(args.checkpoint, args.output, name=args.name, precision=args.precision, overwrite=args.force, refiner_scale=args.refiner_scale))
        return
    config = _config(args)
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    settings = TrainSettings(stage=args.command, **{k: v for k, v in vars(args).items() if k in names})
    print(train(settings, config))


if __name__ == "__main__":
    sys.exit(main())
