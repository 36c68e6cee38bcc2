"""Turn a training run's EMA weights into a model file to bundle or share, with its record."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from ..fileio import atomic_write, check_target
from ..weights import load_weights, save_weights


def export(
    checkpoint: str | os.PathLike, output: str | os.PathLike, name: str | None = None, fp16: bool = True, *, overwrite: bool = False
) -> Path:
    """Write `output` (+ `output` with suffix .json: how it was trained, for humans); an existing
    file is replaced only with `overwrite` (exports often target the bundled models)."""
    record = Path(output).with_suffix(".json")
    for target in (output, record):
        check_target(target, overwrite=overwrite)
    config, state, meta = load_weights(checkpoint)
    if name:
        config = dataclasses.replace(config, name=name)
    info = dict(meta["info"], exported_from=Path(checkpoint).name, dtype="float16" if fp16 else "float32")
    path = save_weights(output, config, state, dtype=torch.float16 if fp16 else None, info=info, overwrite=overwrite)
    text = json.dumps({"config": config.to_dict(), "training": info}, indent=2) + "\n"
    atomic_write(record, text.encode(), overwrite=overwrite)
    return path
