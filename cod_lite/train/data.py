"""Training crops: every image of a folder held in memory, random crops and flips on demand."""

from __future__ import annotations

import os

import numpy as np
import torch

from ..image_io import find_images, load_image


class CropSampler:
    """Random crops (reflect-padded when an image is smaller) with random horizontal flips."""

    def __init__(self, folder: str | os.PathLike, crop: int, seed: int = 0) -> None:
        paths = find_images(folder)
        if not paths:
            raise FileNotFoundError(f"no training images under '{folder}'")
        self.crop = crop
        self.images = [self._fit(load_image(p)) for p in paths]
        self.rng = np.random.default_rng(seed)

    def _fit(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        ph, pw = max(0, self.crop - h), max(0, self.crop - w)
        if ph or pw:
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect" if ph < h and pw < w else "edge")
        return image

    def batch(self, size: int) -> torch.Tensor:
        """(size, 3, crop, crop) float images in [0, 1]."""
        out = np.empty((size, self.crop, self.crop, 3), np.uint8)
        for i in range(size):
            image = self.images[self.rng.integers(len(self.images))]
            top = self.rng.integers(image.shape[0] - self.crop + 1)
            left = self.rng.integers(image.shape[1] - self.crop + 1)
            tile = image[top : top + self.crop, left : left + self.crop]
            out[i] = tile[:, ::-1] if self.rng.random() < 0.5 else tile
        return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255
