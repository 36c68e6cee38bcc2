"""Turn a training run's EMA weights into a model file to bundle or share, with its record."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from ..entropy.prior import IndexPrior
from ..fileio import atomic_write, check_target
from ..models.config import ModelConfig
from ..models.network import CodLiteNet
from ..models.sampling import Sampling
from ..weights import as_stored, load_weights, save_weights
from ..zoo import resolve


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
    prior_from: str | os.PathLike | None = None,
    mix: str | os.PathLike | None = None,
    mix_weight: float = 0.5,
) -> Path:
    """Write `output` (+ `output` with suffix .json: how it was trained, for humans); an existing
    file is replaced only with `overwrite` (exports often target the bundled models).

    `precision` 'int8' stores large matrices as int8 (`save_weights`), half the size of 'fp16';
    no prior is carried over, as indices may move (fit one with `fit-prior`), except with
    `prior_from`: a model (name or file) whose encoder and codebook the run kept frozen, so its
    prior stays valid; refused if they differ by a bit.
    `record=False` skips the .json (where few files may be written, e.g. a GPU session's $OUT).
    `refiner_scale` multiplies the seam refiner's residual (its last conv): a dial between the
    grid and DISTS for a refiner that overshot in training (recorded as info.refiner_scale).
    `mix` (a model name or file of the same architecture) is averaged in with `mix_weight`:
    between two fine-tunes of one model, a dial between their trade-offs (e.g. hatching against
    DISTS) without another run; tensors the two share stay bit for bit (recorded as info.mix).
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
    if mix is not None:
        state, info["mix"] = _mixed(state, config, mix, mix_weight)
    if refiner_scale != 1.0:
        if not config.refine_channels:
            raise ValueError(f"'{checkpoint}' has no seam refiner to scale")
        state = {k: v * refiner_scale if k.startswith("refine.conv2.") else v for k, v in state.items()}
        info["refiner_scale"] = refiner_scale
    dtype = None if precision == "fp32" else torch.float16
    prior = None
    if prior_from is not None:
        stored = as_stored({k: v for k, v in state.items() if k.startswith(CodLiteNet.INDEX_PATH)}, dtype=dtype, int8=precision == "int8")
        prior, info["index_prior"] = _frozen_prior(prior_from, stored)
    sampling = meta["sampling"]  # a pretrain-stage model stays multi-step (older runs' files lack the record)
    if sampling is None and meta["info"].get("stage") == "pretrain":
        sampling = Sampling()
    path = save_weights(
        output, config, state, dtype=dtype, int8=precision == "int8", info=info, sampling=sampling, prior=prior, overwrite=overwrite
    )
    summary = {"config": config.to_dict(), "training": info}
    if sampling is not None:
        summary["sampling"] = json.loads(sampling.to_json())
    text = json.dumps(summary, indent=2) + "\n"
    if record:  # without: the same record lives in the file's metadata ('info')
        atomic_write(record_file, text.encode(), overwrite=overwrite)
    return path


def _frozen_prior(source: str | os.PathLike, stored: dict[str, torch.Tensor]) -> tuple[IndexPrior, str]:
    """The prior of `source` if the index path (encoder and codebook) as it will be `stored` is
    `source`'s bit for bit."""
    path = resolve(source)
    _, source_state, meta = load_weights(path)
    if meta["prior"] is None:
        raise ValueError(f"'{source}' has no index prior to carry over")
    index_keys = [k for k in source_state if k.startswith(CodLiteNet.INDEX_PATH)]
    moved = sorted(set(stored) ^ set(index_keys)) + [k for k in index_keys if k in stored and not torch.equal(stored[k], source_state[k])]
    if not index_keys or moved:
        raise ValueError(f"the run's encoder or codebook differs from '{source}' as stored ({len(moved)} tensors, e.g. {moved[:1]}): "
                         "its indices may move, so fit a new prior (fit-prior)")
    return meta["prior"], f"carried over from {path.name} (prior {meta['prior'].digest.hex()[:16]}): encoder and codebook identical"


def _mixed(state: dict[str, torch.Tensor], config: ModelConfig, other: str | os.PathLike, weight: float) -> tuple[dict[str, torch.Tensor], dict]:
    """(1 - weight) * state + weight * `other`'s state; torch.lerp keeps tensors the two share
    bit for bit (an encoder both runs kept frozen: same indices, same prior)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"mix weight must be in [0, 1], not {weight}")
    path = resolve(other)
    other_config, other_state, meta = load_weights(path)
    shapes = {k: v.shape for k, v in state.items()}
    if dataclasses.replace(other_config, name=config.name) != config or shapes != {k: v.shape for k, v in other_state.items()}:
        raise ValueError(f"'{other}' is not the same architecture: only fine-tunes of one model can be mixed")
    mixed = {k: torch.lerp(v, other_state[k], weight) if v.is_floating_point() else v for k, v in state.items()}
    return mixed, {"file": path.name, "weights_sha256": meta["weights_sha256"], "weight": weight}
