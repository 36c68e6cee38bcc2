"""benchmarks/compare.py: per-image bit matching, downscaled coding and its cache."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import compare  # noqa: E402
from kodak import lowest_reaching  # noqa: E402


def test_lowest_reaching_finds_the_first_quality_at_or_above_the_target():
    sizes = {q: 100 + 10 * q for q in range(0, 101)}
    asked = []
    size_of = lambda q: asked.append(q) or sizes[q]  # noqa: E731
    assert lowest_reaching(size_of, range(0, 101), 355) == 26  # 360 >= 355 > 350
    assert len(asked) <= 8  # bisection, not a sweep
    assert lowest_reaching(size_of, range(0, 101), 50) == 0  # even the lowest overshoots
    assert lowest_reaching(size_of, range(0, 101), 10**6) == 100  # nothing reaches: the highest


def test_downscaled_round_trip_is_full_size_and_smaller():
    yy, xx = np.mgrid[0:96, 0:130]
    image = np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(np.uint8)
    full, out1 = compare.scaled_round_trip(image, "WebP", 50, 1)
    small, out3 = compare.scaled_round_trip(image, "WebP", 50, 3)
    assert out1.shape == out3.shape == image.shape
    assert len(small) < len(full)


def test_every_quality_of_the_search_range_codes_including_jxl_100():
    # the search may end at the top of the range (a high-rate model against a 4x downscaled image);
    # pillow-jxl refuses quality 100 unless asked for lossless, which it then is
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    sizes = {q: len(compare.scaled_round_trip(image, "JXL", q, 1)[0]) for q in (0, 99, 100)}
    assert sizes[0] < sizes[99] < sizes[100]
    assert np.array_equal(compare.scaled_round_trip(image, "JXL", 100, 1)[1], image)


def test_cache_computes_only_missing_fields_and_persists(tmp_path):
    calls = []
    cache = compare.Cache(tmp_path / "c.json")
    first = cache.get("k", ("bytes",), lambda: calls.append(1) or {"bytes": 5})
    again = compare.Cache(tmp_path / "c.json").get("k", ("bytes",), lambda: calls.append(2) or {"bytes": 6})
    more = compare.Cache(tmp_path / "c.json").get("k", ("bytes", "psnr"), lambda: calls.append(3) or {"bytes": 5, "psnr": 30.0})
    assert first == again == {"bytes": 5} and more == {"bytes": 5, "psnr": 30.0} and calls == [1, 3]
