"""Turn a training run's EMA weights into a model file to bundle or share, with its record."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from ..fileio import atomic_write, check_target
from ..models.sampling import Sampling
from ..weights import load_weights, save_weights


PRECISIONS = {"fp32": "float32", "fp16": "float16", "int8": "int8 (per-channel fp16 scales) + float16"}


def export(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    name: str | None = None,
    precision: str = "fp16",
    *,
    overwrite: bool = False,
    record: bool = True,
    refiner_scale: float = 1.0,
) -> Path:
    """Write `output` (+ `output` with suffix .json: how it was trained, for humans); an existing
    file is replaced only with `overwrite` (exports often target the bundled models).

    `precision` 'int8' stores large matrices as int8 (`save_weights`), half the size of 'fp16';
    the prior is not carried over: indices may move, so fit a new one with `fit-prior`.
    `record=False` skips the .json (where few files may be written, e.g. a GPU session's $OUT).
    `refiner_scale` multiplies the seam refiner's residual (its last conv): a dial between the
    grid and DISTS for a refiner that overshot in training (recorded as info.refiner_scale).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    record_file = Path(output).with_suffix(".json")
    for target in (output, record_file) if record else (output,):
        check_target(target, overwrite=overwrite)
    config, state, meta = load_weights(checkpoint)
    if name:
        config = dataclasses.replace(config, name=name)
    info = dict(meta["info"], exported_from=Path(checkpoint).name, dtype=PRECISIONS[precision])
    if refiner_scale != 1.0:
        if not config.refine_channels:
            raise ValueError(f"'{checkpoint}' has no seam refiner to scale")
        state = {k: v * refiner_scale if k.startswith("refine.conv2.") else v for k, v in state.items()}
        info["refiner_scale"] = refiner_scale
    dtype = None if precision == "fp32" else torch.float16
    sampling = meta["sampling"]  # a pretrain-stage model stays multi-step (older runs' files lack the record)
    if sampling is None and meta["info"].get("stage") == "pretrain":
        sampling = Sampling()
    path = save_weights(
        output, config, state, dtype=dtype, int8=precision == "int8", info=info, sampling=sampling, overwrite=overwrite
    )
    summary = {"config": config.to_dict(), "training": info}
    if sampling is not None:
        summary["sampling"] = json.loads(sampling.to_json())
    text = json.dumps(summary, indent=2) + "\n"
    if record:  # without: the same record lives in the file's metadata ('info')
        atomic_write(record_file, text.encode(), overwrite=overwrite)
    return path
