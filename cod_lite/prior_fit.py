"""Fit a model's index prior on a folder of images and store it in the model's weight file.

The prior needs index grids, not pixels, so it is fitted on the frozen codec; the network weights
(and so the model identity in streams) stay exactly as they were.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .codec import Codec, load_model
from .entropy.prior import IndexPrior
from .errors import InputError
from .image_io import find_images
from .weights import attach_prior


def fit_prior(
    model: str | os.PathLike | Codec,
    images: str | os.PathLike,
    output: str | os.PathLike,
    *,
    max_images: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write `output`: the model's weights plus an `IndexPrior` fitted on the images under `images`."""
    codec = model if isinstance(model, Codec) else load_model(model)
    if codec.path is None:
        raise InputError("fitting a prior needs a model loaded from a weight file")
    paths = find_images(images)
    if max_images and len(paths) > max_images:  # an even spread, not the first folder's images
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, max_images).round().astype(int)]
    if not paths:
        raise InputError(f"no images (.png, .jpg, .webp, ...) under '{images}'")
    grids = [codec.quantize(p) for p in tqdm(paths, desc="quantizing", unit="img", disable=not progress)]
    prior = IndexPrior.fit(grids, codec.model_config.codebook_size)
    info = {"index_prior": {"images": len(paths), "folder": Path(images).name}}
    return attach_prior(codec.path, prior, output, info=info, overwrite=overwrite)
