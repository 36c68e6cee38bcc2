"""Tiled inference: large images in bounded working memory.

`Codec` tiles a pass only when the estimated working memory of the untiled pass exceeds its
budget; everything at or below the budget runs the untiled network unchanged.

The network is not local everywhere, so tiles are built around its non-local parts:

- Condition encoder and decoder: GroupNorm over the whole image, attention in 32x32 windows of the
  latent grid. Tiles start on window boundaries (every window inside a tile is a window of the
  whole image; at the image's bottom/right edge a tile ends where the image ends, so the edge
  windows are padded as in the untiled pass) and reach one window past their core on each side;
  only the cores are kept. GroupNorm statistics remain per tile, so tiled indices and conditions
  approximate the untiled ones (docs/performance.md has the measured agreement).
- Denoiser: the DiCo trunk runs on the patch grid (1/256 of the pixels) but uses channel attention
  over the whole grid, so it runs once untiled; tiles of the per-patch pixel head then receive that
  trunk output, which makes tiled decoding of a given condition exact. A model with a seam
  refiner gets tiles one patch wider on each side (its radius is 5 px), so it sees what the
  untiled pass sees (equal up to float rounding: its convs sum in another order per size).

Estimates are fp32 peak bytes fitted to peak RSS measured on CPU (PyTorch 2.13); they err on the
high side.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from fractions import Fraction

import numpy as np
import torch

from .errors import InputError
from .models.condition_codec import WINDOW
from .models.config import PATCH_SIZE, ModelConfig
from .models.network import CodLiteNet, to_uint8

DEFAULT_MAX_MEMORY = 4 << 30  # measured: an 8K image with the default model peaks at 3.2 GiB RSS (decode), process included
PATCH = PATCH_SIZE
_SCORES = WINDOW * WINDOW * 4  # bytes of one latent cell's attention scores: an upper bound (SDPA's math kernel keeps them; the flash kernel it uses now does not)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_memory(value: int | str) -> int:
    """'4G', '512M', '1.5GiB', '4096' (bytes; binary multiples) -> bytes, or InputError."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", str(value), re.IGNORECASE)
        size = int(float(match[1]) * _UNITS[match[2].upper()]) if match else 0
    if size <= 0:
        raise InputError(f"max memory must be a positive size such as 4G, 512M or 1000000 (bytes), got '{value}'")
    return size


# -- working-memory estimates (bytes, batch 1, fp32) -------------------------------------------
def quantize_bytes(config: ModelConfig, height: int, width: int) -> int:
    """Untiled `Codec.quantize` of a padded height x width image: input copies, then the larger of
    the full-resolution encoder levels and the latent grid's window attention."""
    pixels = height * width
    cells = pixels // config.ds**2
    c = config.encoder_channels
    return 40 * pixels + max(8 * c * pixels, cells * (4 * _SCORES + 128 * c))


def _condition_bytes(config: ModelConfig, cells: int) -> int:
    return cells * (4 * _SCORES + 40 * config.hidden_size)


def _denoise_bytes(config: ModelConfig, pixels: int) -> int:
    """The per-pixel head dominates: about 11 fp32 values per pixel and head channel."""
    return pixels * 4 * (8 + 11 * config.hidden_size_x)


def reconstruct_bytes(config: ModelConfig, height: int, width: int) -> int:
    """Untiled `Codec.reconstruct` of a padded height x width image (output conversion included)."""
    pixels = height * width
    return 36 * pixels + max(_condition_bytes(config, pixels // config.ds**2), _denoise_bytes(config, pixels))


# -- tile layout --------------------------------------------------------------------------------
Span = tuple[int, int, int, int]  # tile start, tile stop, core start, core stop (one axis)
Slices = tuple[slice, slice]


def spans(length: int, unit: int, count: int, margin: int) -> list[Span]:
    """`count` cores covering 0..length, boundaries on multiples of `unit`, each grown by `margin`."""
    units = -(-length // unit)
    bounds = [min(length, i * units // count * unit) for i in range(count + 1)]
    return [(max(0, a - margin), min(length, b + margin), a, b) for a, b in zip(bounds, bounds[1:])]


def layout(height: int, width: int, unit: int, margin: int, fits: Callable[[int, int], bool]) -> list[tuple[Span, Span]]:
    """The fewest square-ish tiles whose largest tile `fits(tile_height, tile_width)`; the
    smallest possible tiles (one unit of core) if none fits."""
    units_y, units_x = -(-height // unit), -(-width // unit)
    for side in range(max(units_y, units_x), 0, -1):
        rows = spans(height, unit, -(-units_y // side), margin)
        cols = spans(width, unit, -(-units_x // side), margin)
        if fits(max(s[1] - s[0] for s in rows), max(s[1] - s[0] for s in cols)):
            break
    return [(r, c) for r in rows for c in cols]


def placements(tiles: list[tuple[Span, Span]], scale: Fraction = Fraction(1)) -> Iterator[tuple[Slices, Slices, Slices]]:
    """Per tile: its slices of the input grid, then where its core lies in the tile's output and in
    the whole output, whose cells are `scale` times the input's."""
    for spans_yx in tiles:
        yield (
            tuple(slice(a, b) for a, b, _, _ in spans_yx),
            tuple(slice(int((c - a) * scale), int((d - a) * scale)) for a, _, c, d in spans_yx),
            tuple(slice(int(c * scale), int(d * scale)) for _, _, c, d in spans_yx),
        )


# -- tiled passes -------------------------------------------------------------------------------
def image_tensor(pixels: np.ndarray, device: torch.device) -> torch.Tensor:
    """HxWx3 uint8 -> (1, 3, H, W) float in [0, 1], the encoder's input."""
    return torch.from_numpy(pixels.copy()).to(device).permute(2, 0, 1)[None].float() / 255


def quantize_tiled(net: CodLiteNet, pixels: np.ndarray, budget: int, device: torch.device) -> np.ndarray:
    """Padded HxWx3 uint8 image -> index grid, one window-aligned tile at a time."""
    config = net.config
    height, width = pixels.shape[:2]
    fixed = 3 * height * width + 8 * height * width // config.ds**2  # the image and the index grid
    fits = lambda h, w: fixed + quantize_bytes(config, h, w) <= budget  # noqa: E731
    unit = WINDOW * config.ds
    indices = np.empty((height // config.ds, width // config.ds), dtype=np.int64)
    for tile, inner, outer in placements(layout(height, width, unit, unit, fits), Fraction(1, config.ds)):
        indices[outer] = net.quantize(image_tensor(pixels[tile], device))[0][inner].cpu().numpy()
    return indices


def reconstruct_tiled(net: CodLiteNet, indices: torch.Tensor, budget: int) -> torch.Tensor:
    """(1, h, w) indices -> (H, W, 3) uint8 image (padded size), within about `budget` bytes."""
    config = net.config
    height, width = indices.shape[1] * config.ds, indices.shape[2] * config.ds
    pixels = height * width
    fixed = 3 * pixels + pixels // PATCH**2 * 4 * config.hidden_size  # the output image and the condition
    cond = condition(net, indices, budget - fixed)
    trunk = net.trunk(cond.new_zeros(1, 3, height, width), None, cond)
    out = torch.empty(height, width, 3, dtype=torch.uint8, device=indices.device)
    for tile, _, inner, outer in _head_tiles(net, trunk, fixed, budget):
        c = cond[(..., *tile)]
        x_t = c.new_zeros(1, 3, c.shape[2] * PATCH, c.shape[3] * PATCH)
        out[outer] = to_uint8(net.refined(net.head(x_t, c, trunk[(..., *tile)])))[0][inner]
    return out


def denoise_tiled(net: CodLiteNet, x_t: torch.Tensor, t: torch.Tensor | None, cond: torch.Tensor, budget: int) -> torch.Tensor:
    """`net.denoise` of one image (1, 3, H, W) with the per-pixel head in patch tiles, within about
    `budget` bytes beyond the caller's state: what multi-step sampling of a large image calls."""
    trunk = net.trunk(x_t, t, cond)  # at 1/16 resolution: small
    out = torch.empty_like(x_t)
    for tile, pixels, inner, outer in _head_tiles(net, trunk, 0, budget):
        image = net.refined(net.head(x_t[(..., *pixels)], cond[(..., *tile)], trunk[(..., *tile)]))
        out[(..., *outer)] = image[(..., *inner)]
    return out


def _head_tiles(net: CodLiteNet, trunk: torch.Tensor, fixed: int, budget: int) -> Iterator[tuple[Slices, Slices, Slices, Slices]]:
    """Patch-aligned head tiles that fit `budget` beside `fixed` bytes and the trunk: per tile its
    slices of the patch grid, of the pixels, and where its core lies in the tile's output and in
    the whole image."""
    fits = lambda h, w: fixed + 4 * trunk.numel() + _denoise_bytes(net.config, h * w * PATCH**2) <= budget  # noqa: E731
    halo = 0 if net.refine is None else 1  # one patch is wider than SeamRefiner.RADIUS
    for tile, inner, outer in placements(layout(trunk.shape[2], trunk.shape[3], 1, halo, fits), Fraction(PATCH)):
        yield tile, tuple(slice(a.start * PATCH, a.stop * PATCH) for a in tile), inner, outer


def condition(net: CodLiteNet, indices: torch.Tensor, budget: int) -> torch.Tensor:
    """Condition features at 1/16 for the whole image, decoded in window-aligned latent tiles
    when the whole latent grid needs more than `budget`."""
    config = net.config
    h, w = indices.shape[1:]
    if _condition_bytes(config, h * w) <= budget:
        return net.y_embedder.decode(indices)
    fits = lambda th, tw: _condition_bytes(config, th * tw) <= budget  # noqa: E731
    dtype = net.y_embedder.bottleneck.embedding.weight.dtype
    cond = torch.empty(1, config.hidden_size, h * config.ds // PATCH, w * config.ds // PATCH, dtype=dtype, device=indices.device)
    for tile, inner, outer in placements(layout(h, w, WINDOW, WINDOW, fits), Fraction(config.ds, PATCH)):
        cond[(..., *outer)] = net.y_embedder.decode(indices[(..., *tile)])[(..., *inner)]
    return cond
