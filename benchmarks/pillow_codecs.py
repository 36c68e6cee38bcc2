"""Pillow's classical codecs as one encode-decode round trip, shared by the benchmarks."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

SAVE_OPTIONS = {  # format -> save options besides quality
    "AVIF": {},
    "WebP": {},
    "JPEG": {"subsampling": 2},
    "JXL": {},
}


def round_trip(image: np.ndarray, fmt: str, quality: int) -> tuple[bytes, np.ndarray]:
    """(file bytes, decoded HxWx3 uint8) for one image at one quality."""
    if fmt == "JXL":
        import pillow_jxl  # noqa: F401  (importing it registers JXL with Pillow)
    options = dict(SAVE_OPTIONS[fmt])
    if fmt == "JXL" and quality >= 100:  # pillow-jxl refuses quality 100 ("encoder API used in an incorrect way") unless lossless
        options["lossless"] = True
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, quality=quality, **options)
    data = buf.getvalue()
    return data, np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
