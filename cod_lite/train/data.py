"""Training crops: every image of a folder held in memory, random crops and flips on demand;
and compact crop sets to carry a training set where only a few tens of MB may travel."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..image_io import find_images, load_image


SIZE_STEP = 32  # crop sides of --max-crop runs are multiples of this (every model's size unit divides it)


class CropSampler:
    """Random crops (reflect-padded when an image is smaller) with random horizontal flips.

    With `max_crop`, each batch has its own height and width, drawn from crop..max_crop (in
    steps of SIZE_STEP, at most the first image's size): the encoder and condition decoder
    normalise over the whole picture, so a model trained at one crop size codes pictures of
    other sizes with a colour cast (docs/training.md, "Crop size")."""

    def __init__(self, folder: str | os.PathLike, crop: int, seed: int = 0, max_crop: int | None = None) -> None:
        paths = find_images(folder)
        if not paths:
            raise FileNotFoundError(f"no training images under '{folder}'")
        self.crop = crop
        self.max_crop = max(crop, max_crop or crop)
        self.images = [self._fit(load_image(p)) for p in paths]
        self.rng = np.random.default_rng(seed)

    def _fit(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        ph, pw = max(0, self.crop - h), max(0, self.crop - w)
        if ph or pw:
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect" if ph < h and pw < w else "edge")
        return image

    def _side(self, limit: int) -> int:
        top = max(self.crop, min(self.max_crop, limit))
        return int(self.rng.integers(self.crop // SIZE_STEP, top // SIZE_STEP + 1)) * SIZE_STEP if top > self.crop else self.crop

    def batch(self, size: int) -> torch.Tensor:
        """(size, 3, height, width) float images in [0, 1]; crop x crop unless max_crop is set."""
        picks = [self.images[self.rng.integers(len(self.images))] for _ in range(size)]
        height, width = (self._side(n) for n in picks[0].shape[:2]) if self.max_crop > self.crop else (self.crop, self.crop)
        out = np.empty((size, height, width, 3), np.uint8)
        for i, image in enumerate(picks):
            ph, pw = max(0, height - image.shape[0]), max(0, width - image.shape[1])
            if ph or pw:
                image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect")
            top = self.rng.integers(image.shape[0] - height + 1)
            left = self.rng.integers(image.shape[1] - width + 1)
            tile = image[top : top + height, left : left + width]
            out[i] = tile[:, ::-1] if self.rng.random() < 0.5 else tile
        return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255


def write_crop_set(
    src: str | os.PathLike, out: str | os.PathLike, *, size: int = 256, max_bytes: int = 20 << 20, quality: int = 95, seed: int = 0
) -> tuple[int, int]:
    """Random size x size crops of the images under `src`, round-robin over the images in a
    seeded order, as JPEG (4:4:4) files in the new folder `out` until `max_bytes` would be
    exceeded; returns (files, bytes). Images smaller than `size` give their largest square."""
    paths = find_images(src)
    if not paths:
        raise FileNotFoundError(f"no images under '{src}'")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"'{out}' is not empty")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = [load_image(p) for p in paths]
    count = total = 0
    while True:
        for i in rng.permutation(len(images)):
            image = images[i]
            side = min(size, *image.shape[:2])
            top, left = (int(rng.integers(n - side + 1)) for n in image.shape[:2])
            buffer = io.BytesIO()
            Image.fromarray(image[top : top + side, left : left + side]).save(buffer, "JPEG", quality=quality, subsampling=0)
            if total + buffer.tell() > max_bytes:
                return count, total
            (out / f"crop_{count:06d}.jpg").write_bytes(buffer.getvalue())
            count, total = count + 1, total + buffer.tell()
