"""`metrics.blockiness` and `metrics.patch_pattern`: the 16-pixel grid's two artefacts as numbers,
on constructed images with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cod_lite import metrics
from cod_lite.errors import InputError


def _gray(y: np.ndarray) -> np.ndarray:
    """An HxWx3 image whose BT.601 luma is exactly y (R = G = B and the weights sum to 1)."""
    return np.repeat(np.clip(np.round(y), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _ramp(height: int = 96, width: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return xx + yy  # every horizontal and vertical step is exactly 1


def test_smooth_ramp_scores_exactly_one():
    assert metrics.blockiness(_gray(_ramp())) == pytest.approx(1.0, abs=1e-12)


def test_per_block_offset_scores_far_above_one_with_the_exact_ratio():
    yy, xx = np.mgrid[0:96, 0:128]
    offsets = 20 * ((yy // 16 + xx // 16) % 2)  # a checkerboard of +0/+20 over the 16x16 blocks
    value = metrics.blockiness(_gray(_ramp() + offsets))
    # every border pair steps by 1 + 20 or 1 - 20 (|.| = 21 or 19, half each), inner pairs by 1
    assert value == pytest.approx(20.0, abs=1e-9)


def test_a_grid_at_another_phase_is_not_counted():
    yy, xx = np.mgrid[0:96, 0:128]
    shifted = 20 * (((yy + 8) // 16 + (xx + 8) // 16) % 2)  # the same blocks, offset by 8 pixels
    value = metrics.blockiness(_gray(_ramp() + shifted))
    assert value < 1  # the big steps are inside our cells now, so borders look smoother than cells
    # and a grid of 8-pixel blocks (JPEG's) half of whose borders sit on ours counts only that half
    assert 1 < metrics.blockiness(_gray(_ramp() + 20 * ((yy // 8 + xx // 8) % 2))) < 20


def test_luma_weights_are_bt601():
    red, green, blue = (np.zeros((2, 2, 3), np.uint8) for _ in range(3))
    red[..., 0], green[..., 1], blue[..., 2] = 255, 255, 255
    assert [metrics.luma(c)[0, 0] for c in (red, green, blue)] == pytest.approx([0.299 * 255, 0.587 * 255, 0.114 * 255])
    # a step of 100 in red alone at the border is a luma step of 29.9 there (inner steps 1)
    _, xx = np.mgrid[0:32, 0:32]
    image = _gray(_ramp(32, 32))
    image[..., 0] = image[..., 0] + np.where(xx >= 16, 100, 0).astype(np.uint8)
    # horizontal border pairs (32 of them) step by 1 + 29.9, vertical ones (32) by 1; inner pairs by 1
    assert metrics.blockiness(image) == pytest.approx((30.9 * 32 + 1 * 32) / 64, rel=1e-9)


def test_undefined_cases_are_nan_or_inf_and_bad_shapes_are_input_errors():
    assert math.isnan(metrics.blockiness(_gray(_ramp(16, 16))))  # no pair straddles a border
    assert math.isnan(metrics.blockiness(np.full((40, 40, 3), 7, np.uint8)))  # flat: 0 / 0
    yy, xx = np.mgrid[0:32, 0:32]
    assert metrics.blockiness(_gray(50.0 * (xx // 16))) == math.inf  # steps only at the border
    with pytest.raises(InputError, match="HxWx3"):
        metrics.blockiness(np.zeros((8, 8), np.uint8))


def test_grid_argument_moves_the_borders():
    yy, xx = np.mgrid[0:64, 0:64]
    eight = _gray(_ramp(64, 64) + 20 * ((yy // 8 + xx // 8) % 2))
    assert metrics.blockiness(eight, grid=8) == pytest.approx(20.0, abs=1e-9)


# -- patch_pattern ----------------------------------------------------------------------------


def patternless(seed: int = 0) -> np.ndarray:
    """256x256 luma of random texture whose mean 16x16 cell is exactly flat: cell (a, b) is one
    random 16x16 texture rolled by (a, b), so each texture pixel visits every cell position once."""
    texture = np.random.default_rng(seed).integers(60, 190, (16, 16))
    return np.block([[np.roll(texture, (a, b), axis=(0, 1)) for b in range(16)] for a in range(16)]).astype(np.float64)


def stamp(seed: int = 1) -> np.ndarray:
    """A random integer 16x16 texture, for stamping into every cell."""
    return np.random.default_rng(seed).integers(-8, 9, (16, 16)).astype(np.float64)


def _tiled(cell: np.ndarray, height: int = 256, width: int = 256) -> np.ndarray:
    return np.tile(cell, (height // cell.shape[0], width // cell.shape[1]))


def test_a_stamp_on_a_constant_image_scores_its_rms():
    assert metrics.patch_pattern(_gray(100 + _tiled(stamp()))) == pytest.approx(np.std(stamp()), rel=1e-12)
    yy, xx = np.mgrid[0:16, 0:16]
    hatching = 3.0 * (-1) ** (yy + xx)  # +-3 per pixel: RMS exactly 3
    assert metrics.patch_pattern(_gray(100 + _tiled(hatching))) == pytest.approx(3.0, rel=1e-12)
    assert metrics.patch_pattern(np.full((64, 64, 3), 100, np.uint8)) == 0


def test_a_stamp_on_patternless_texture_adds_exactly_its_rms():
    base = patternless()
    assert metrics.patch_pattern(_gray(base)) == pytest.approx(0.0, abs=1e-9)
    assert metrics.patch_pattern(_gray(base + _tiled(stamp()))) == pytest.approx(np.std(stamp()), rel=1e-9)


def test_only_whole_cells_from_the_top_left_count():
    image = _gray(patternless() + _tiled(stamp()))
    junk = np.random.default_rng(2).integers(0, 256, (263, 261, 3)).astype(np.uint8)
    junk[:256, :256] = image  # a partial strip of noise right and below is cropped away
    assert metrics.patch_pattern(junk) == metrics.patch_pattern(image)


def test_pattern_is_measured_in_bt601_luma():
    image = np.full((256, 256, 3), 100, np.uint8)
    image[..., 0] = 100 + _tiled(stamp())  # the stamp in red alone
    assert metrics.patch_pattern(image) == pytest.approx(0.299 * np.std(stamp()), rel=1e-9)


def test_pattern_is_nan_without_a_whole_cell_and_bad_shapes_are_input_errors():
    assert math.isnan(metrics.patch_pattern(np.zeros((15, 40, 3), np.uint8)))
    assert math.isnan(metrics.patch_pattern(np.zeros((40, 15, 3), np.uint8)))
    assert metrics.patch_pattern(_gray(100 + stamp())) == pytest.approx(np.std(stamp()), rel=1e-12)  # one cell
    with pytest.raises(InputError, match="HxWx3"):
        metrics.patch_pattern(np.zeros((32, 32), np.uint8))


def test_pattern_grid_argument_sets_the_cell():
    quarter = stamp()[:8, :8]
    signed = np.block([[quarter, -quarter], [-quarter, quarter]])  # its four 8x8 quadrants average to 0
    image = _gray(100 + _tiled(signed))
    assert metrics.patch_pattern(image) == pytest.approx(np.std(signed), rel=1e-12) and np.std(signed) > 1
    assert metrics.patch_pattern(image, grid=8) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(metrics.patch_pattern(image, grid=300))
