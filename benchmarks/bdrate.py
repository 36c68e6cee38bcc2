"""Bjøntegaard delta rate (VCEG-M33): how many more or fewer bits one codec needs than another
for the same quality, averaged over the quality range both rate-distortion curves cover.

Log-rate is fitted as a polynomial of the metric (cubic, or of lower degree for curves with
fewer points), so the metric may be higher-is-better (PSNR) or lower-is-better (LPIPS) alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _fit(rates: Sequence[float], quality: Sequence[float], which: str) -> tuple[np.ndarray, float, float]:
    """Integrated polynomial of log-rate in the metric, and the metric range it was fitted on."""
    r, q = np.asarray(rates, dtype=float), np.asarray(quality, dtype=float)
    if r.shape != q.shape or r.ndim != 1:
        raise ValueError(f"{which}: rates and metric values differ in length ({r.size} vs {q.size})")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(q)) and np.all(r > 0)):
        raise ValueError(f"{which}: rates must be positive and all values finite")
    distinct = np.unique(q).size
    if distinct < 2:
        raise ValueError(f"{which} has {distinct} distinct point(s); a curve needs at least 2")
    return np.polyint(np.polyfit(q, np.log(r), min(3, distinct - 1))), float(q.min()), float(q.max())


def bd_rate(
    anchor_rates: Sequence[float],
    anchor_quality: Sequence[float],
    test_rates: Sequence[float],
    test_quality: Sequence[float],
) -> float:
    """Percent bitrate change of the test curve against the anchor at equal quality (negative: the
    test needs fewer bits). Raises ValueError saying why when there is no answer."""
    anchor, a_lo, a_hi = _fit(anchor_rates, anchor_quality, "anchor")
    test, t_lo, t_hi = _fit(test_rates, test_quality, "test")
    lo, hi = max(a_lo, t_lo), min(a_hi, t_hi)
    if lo >= hi:
        raise ValueError(f"no metric overlap: anchor spans {a_lo:.4g}..{a_hi:.4g}, test {t_lo:.4g}..{t_hi:.4g}")
    area = lambda p: np.polyval(p, hi) - np.polyval(p, lo)  # noqa: E731
    return float(np.expm1((area(test) - area(anchor)) / (hi - lo)) * 100)
