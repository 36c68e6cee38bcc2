"""BD-rate (benchmarks/bdrate.py) on synthetic curves whose answer is known in closed form."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location("bdrate", Path(__file__).parents[1] / "benchmarks" / "bdrate.py")
bdrate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bdrate)

# An LPIPS-like curve: quality improves (metric falls) as the rate grows, not a polynomial in log-rate.
RATES = np.array([0.05, 0.1, 0.2, 0.4, 0.8, 1.6])
LPIPS = 0.6 / (1 + 4 * RATES**0.7)


def test_identical_curves_give_zero() -> None:
    assert bdrate.bd_rate(RATES, LPIPS, RATES, LPIPS) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("factor", [0.8, 0.5, 1.25])
def test_constant_rate_factor(factor: float) -> None:
    assert bdrate.bd_rate(RATES, LPIPS, factor * RATES, LPIPS) == pytest.approx((factor - 1) * 100, abs=1e-9)


def test_higher_is_better_metric() -> None:
    psnr = 25 + 6 * np.log2(RATES / RATES[0])
    assert bdrate.bd_rate(RATES, psnr, 0.8 * RATES, psnr) == pytest.approx(-20.0, abs=1e-9)


def test_two_point_test_curve_inside_anchor() -> None:
    # Log-linear anchor; the test curve is two points at half its rate, covering part of its range.
    quality = np.linspace(0.1, 0.5, 7)
    anchor = np.exp(3 - 8 * quality)
    test_quality = np.array([0.2, 0.35])
    assert bdrate.bd_rate(anchor, quality, 0.5 * np.exp(3 - 8 * test_quality), test_quality) == pytest.approx(-50.0)


def test_only_overlap_counts() -> None:
    # Test rates are 0.8x the anchor's where they overlap; the anchor alone goes on to other values.
    quality = np.linspace(0.0, 1.0, 9)
    log_rate = lambda q: 1 - 2 * q + q**2 - 0.5 * q**3  # noqa: E731
    test_quality = np.linspace(0.5, 2.0, 9)
    result = bdrate.bd_rate(np.exp(log_rate(quality)), quality, 0.8 * np.exp(log_rate(test_quality)), test_quality)
    assert result == pytest.approx(-20.0)


@pytest.mark.parametrize(
    ("test_rates", "test_quality", "reason"),
    [
        ([0.1], [0.3], "at least 2"),
        ([0.1, 0.2], [0.3, 0.3], "at least 2"),
        ([0.01, 0.02], [0.9, 0.8], "no metric overlap"),
        ([0.0, 0.2], [0.3, 0.2], "positive"),
    ],
)
def test_no_answer_says_why(test_rates: list[float], test_quality: list[float], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        bdrate.bd_rate(RATES, LPIPS, test_rates, test_quality)
