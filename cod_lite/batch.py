"""Several images per network call: images of one padded size share a forward pass, as many as
the codec's memory budget allows. What keeps a GPU busy (`Codec.encode_many`/`decode_many`);
an image too large for the budget alone goes the single-image (tiled) way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from . import colour, tiling
from .image_io import ImageSource, load_image
from .models.config import ModelConfig
from .models.network import to_uint8
from .models.sampling import sample_bytes

if TYPE_CHECKING:
    from .codec import Codec

Cost = Callable[[ModelConfig, int, int], int]  # working bytes of one image of a padded size


def size_groups(sizes: Sequence[tuple[int, int]], cost: Cost, config: ModelConfig, budget: int) -> list[list[int]]:
    """Positions of equal padded sizes, in groups whose summed `cost` fits `budget`; an image
    too large to batch is left out (the single-image path tiles it)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, size in enumerate(sizes):
        groups.setdefault(size, []).append(i)
    out = []
    for (height, width), members in groups.items():
        per_image = cost(config, height, width)
        if per_image > budget:
            continue
        step = max(1, budget // per_image)
        out += [members[k : k + step] for k in range(0, len(members), step)]
    return out


def encode_many(
    codec: Codec, images: Sequence[ImageSource], methods: tuple[int, ...] | None = None, colour: bool = True,
    metadata: Sequence[dict[str, bytes] | None] | None = None, effort: int = 0,
) -> list[bytes]:
    """Streams for several images (with `metadata[i]`, kind -> bytes, carried in stream i; the
    encoder's search at `effort` per image). Each equals what `codec.encode` makes of its image,
    up to summation order (batched kernels may flip a near-tied index)."""
    pixels = [load_image(image) for image in images]
    indices: list[np.ndarray | None] = [None] * len(pixels)
    sizes = [codec.model_config.padded_size(*p.shape[:2]) for p in pixels]
    for group in size_groups(sizes, tiling.quantize_bytes, codec.model_config, codec.max_memory):
        with torch.inference_mode():
            batch = torch.cat([tiling.image_tensor(codec.padded(pixels[i]), codec.device) for i in group])
            grids = codec._quantize(batch).cpu().numpy().astype(np.int64)
        for i, grid in zip(group, grids):
            indices[i] = grid
    grids = [codec.searched(p, grid if grid is not None else codec.quantize(p), effort) for p, grid in zip(pixels, indices)]
    carried = metadata if metadata is not None else [None] * len(pixels)
    return [codec._stream(grid, p, methods, m, colour) for p, grid, m in zip(pixels, grids, carried)]


def decode_many(codec: Codec, streams: Sequence[bytes], steps: int | None = None, seed: int | None = None) -> list[np.ndarray]:
    """HxWx3 uint8 images for several streams. Each image gets the noise `codec.decode` would give
    it (same steps and seed), so it equals that image up to summation order (batched kernels may
    move a pixel by 1)."""
    steps = codec.steps_for(steps)
    one_pass = codec._one_pass(steps)
    reads = [codec._read(data) for data in streams]
    headers, parsed = [r[0] for r in reads], [r[1:] for r in reads]
    images: list[np.ndarray | None] = [None] * len(parsed)
    sizes = [codec.model_config.padded_size(height, width) for _, height, width in parsed]
    cost = tiling.reconstruct_bytes if one_pass else sample_bytes
    for group in size_groups(sizes, cost, codec.model_config, codec.max_memory):
        idx = torch.from_numpy(np.stack([parsed[i][0] for i in group])).to(codec.device)
        with torch.inference_mode():
            out = (to_uint8(codec._reconstruct(idx)) if one_pass else codec._sample(idx, steps, seed)).cpu().numpy()
        for i, image in zip(group, out):
            images[i] = np.ascontiguousarray(image[: parsed[i][1], : parsed[i][2]])
    return [
        colour.correct(image if image is not None else codec._image(*p, steps, seed), header.colour, header.colour_grid)
        for image, p, header in zip(images, parsed, headers)
    ]
