"""`codlite train` (also `python -m cod_lite.train`): the training stages, export and crop sets.

A stage's options are the fields of `TrainSettings` (--batch-size for batch_size, ...), so the
command and the settings cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import click

import cod_lite
from cod_lite.train import EXPORT_PRECISIONS, STAGES, TrainSettings, export, run_config, train, write_crop_set

# option -> (type, the ModelConfig field it sets, help)
ARCHITECTURE = {"name": (str, "name", None), "ds": (int, "ds", None), "bits": (int, "codebook_bits", None),
                "hidden": (int, "hidden_size", None), "hidden_x": (int, "hidden_size_x", None), "blocks": (int, "num_blocks", None),
                "cond_blocks": (int, "num_cond_blocks", None), "encoder_channels": (int, "encoder_channels", None),
                "refine_channels": (int, "refine_channels", "> 0: add the seam refiner (see SeamRefiner)")}
_TYPES = {"int": int, "float": float}


def _friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Failures as one line and an exit status, as every codlite command (`cod_lite.exit_status`)."""

    def wrapper(**kwargs: Any) -> None:
        status = cod_lite.exit_status(lambda: command(**kwargs), prog="codlite train")
        if status:
            raise SystemExit(status)

    return wrapper


def _stage_command(stage: str) -> click.Command:
    params: list[click.Parameter] = [
        click.Option(["--data"], required=True, help="folder of training images (searched recursively)"),
        click.Option(["--out"], required=True, help="run folder: checkpoints, train.log; resumed if present"),
    ]
    for field in dataclasses.fields(TrainSettings):
        if field.name in ("stage", "data", "out"):
            continue
        flag = "--" + field.name.replace("_", "-")
        if field.type in ("bool", bool):
            params.append(click.Option([flag, field.name], is_flag=True, default=False))
        else:
            kind = _TYPES.get(str(field.type).split(" ")[0], str)
            params.append(click.Option([flag, field.name], type=kind, default=field.default, show_default=True))
    for option, (kind, _, help_text) in ARCHITECTURE.items():
        params.append(click.Option(["--" + option.replace("_", "-"), "arch_" + option], type=kind, default=None,
                                   help=(help_text or "") + " [architecture; default: the resumed run's, else --init's, else small]"))

    def run(**values: Any) -> None:
        changes = {field: values.pop("arch_" + option) for option, (_, field, _) in ARCHITECTURE.items()}
        config = run_config(values["out"], values["init"], **{k: v for k, v in changes.items() if v is not None})
        click.echo(train(TrainSettings(stage=stage, **values), config))

    return click.Command(stage, callback=_friendly(run), params=params, help=STAGES[stage].__doc__)


@click.group("train", context_settings={"help_option_names": ["-h", "--help"]})
def train_group() -> None:
    """Train CoD-Lite models (docs/training.md)."""


for _stage in STAGES:
    train_group.add_command(_stage_command(_stage))


@train_group.command("export")
@click.argument("checkpoint")
@click.argument("output")
@click.option("--name", default=None)
@click.option("--precision", type=click.Choice(sorted(EXPORT_PRECISIONS)), default="fp16", show_default=True,
              help="int8: half the size of fp16 (bundled models)")
@click.option("--force", is_flag=True, help="replace OUTPUT (and its .json) if they exist")
@click.option("--refiner-scale", type=float, default=1.0, show_default=True, help="multiply the seam refiner's residual (e.g. 0.6)")
@click.option("--prior-from", default=None, metavar="MODEL",
              help="carry over MODEL's index prior (a run that kept MODEL's encoder frozen: --freeze-encoder)")
@click.option("--mix", default=None, metavar="MODEL", help="average MODEL (a fine-tune of the same model) into the weights")
@click.option("--mix-weight", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="MODEL's share in --mix")
def export_command(checkpoint: str, output: str, name: str | None, precision: str, force: bool, refiner_scale: float,
                   prior_from: str | None, mix: str | None, mix_weight: float) -> None:
    """Write a run's EMA weights as a model file for bundling."""
    _friendly(lambda: click.echo(export(checkpoint, output, name=name, precision=precision, overwrite=force,
                                        refiner_scale=refiner_scale, prior_from=prior_from, mix=mix, mix_weight=mix_weight)))()


@train_group.command("crops")
@click.argument("src")
@click.argument("out")
@click.option("--size", type=int, default=256, show_default=True)
@click.option("--max-mb", type=float, default=20.0, show_default=True)
@click.option("--quality", type=int, default=95, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def crops_command(src: str, out: str, size: int, max_mb: float, quality: int, seed: int) -> None:
    """Write a compact set of JPEG crops (to carry a training set to another machine); OUT is a new or empty folder."""

    def run() -> None:
        files, total = write_crop_set(src, out, size=size, max_bytes=int(max_mb * 2**20), quality=quality, seed=seed)
        click.echo(f"{files} crops, {total / 2**20:.1f} MiB in {out}")

    _friendly(run)()


def main(argv: list[str] | None = None) -> int:
    """`python -m cod_lite.train ...` as a function: its exit status."""
    try:
        train_group.main(args=argv, prog_name="python -m cod_lite.train", standalone_mode=False)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except SystemExit as e:
        return int(e.code or 0)
    return 0
