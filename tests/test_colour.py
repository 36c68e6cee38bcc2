"""`metrics.colour_error`: CIELAB dE76 between 16x16 region means, on images with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cod_lite import metrics
from cod_lite.errors import InputError


def _flat(rgb: tuple[int, int, int], height: int = 48, width: int = 64) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (height, width, 3)).copy()


def test_lab_of_the_srgb_primaries_and_white_are_the_published_values():
    lab = metrics.srgb_to_lab(np.array([[255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0]]))
    expected = [[100, 0, 0], [53.24, 80.09, 67.20], [87.73, -86.18, 83.18], [32.30, 79.19, -107.86], [0, 0, 0]]
    np.testing.assert_allclose(lab, expected, atol=0.01)


def test_flat_colours_differ_by_their_lab_distance():
    assert metrics.colour_error(_flat((255, 0, 0)), _flat((0, 255, 0))) == pytest.approx(170.565, abs=0.01)
    assert metrics.colour_error(_flat((0, 0, 0)), _flat((255, 255, 255))) == pytest.approx(100.0, abs=1e-4)
    assert metrics.colour_error(_flat((90, 140, 30)), _flat((90, 140, 30))) == 0.0


def test_texture_inside_a_region_is_invisible_but_a_region_cast_is_not():
    rng = np.random.default_rng(0)
    photo = rng.integers(40, 200, (64, 96, 3)).astype(np.uint8)
    stamp = np.zeros((16, 16, 3), np.int16)
    stamp[::2] += 20
    stamp[1::2] -= 20  # zero mean over every 16x16 region
    hatched = (photo + np.tile(stamp, (4, 6, 1))).astype(np.uint8)
    assert metrics.colour_error(photo, hatched) == pytest.approx(0.0, abs=1e-9)
    cast = photo.copy()
    cast[..., 2] -= 30  # blue down everywhere: every region moves
    assert metrics.colour_error(photo, cast) > 10


def test_only_the_cast_region_counts_in_the_mean():
    a = _flat((128, 128, 128), 32, 32)
    b = a.copy()
    b[:16, :16] = 0  # one of four regions goes black: dE = L of grey 128 over four regions
    assert metrics.colour_error(a, b) == pytest.approx(metrics.srgb_to_lab(np.array([128, 128, 128]))[0] / 4, rel=1e-9)


def test_small_images_are_one_region_and_edges_are_dropped():
    a, b = _flat((10, 200, 30), 7, 5), _flat((10, 200, 40), 7, 5)
    assert metrics.colour_error(a, b) == pytest.approx(float(np.linalg.norm(
        metrics.srgb_to_lab(np.array([10, 200, 30])) - metrics.srgb_to_lab(np.array([10, 200, 40])))), rel=1e-9)
    c = _flat((50, 50, 50), 20, 20)
    d = c.copy()
    d[16:, :] = 255  # only the edge strip beyond the one whole region changes
    assert metrics.colour_error(c, d) == 0.0


def test_mismatched_images_are_input_errors():
    with pytest.raises(InputError):
        metrics.colour_error(_flat((1, 2, 3), 16, 16), _flat((1, 2, 3), 16, 32))
