"""Judge decoded images against their originals: per-image metrics, means, FID/KID over patches.

Colour error (`metrics.colour_error`, CIELAB dE between 16x16 region means: a colour cast that
LPIPS barely sees) is given beside the perceptual metrics. Blockiness (`metrics.blockiness`) is given for the decoded image and for its original, so the
16-pixel patch grid is a number next to the original's baseline (about 1 for photos); so is the
patch pattern (`metrics.patch_pattern`, the texture repeated in every patch: 1-2 for photos).

Two ways in: a folder of decoded images mirroring the reference folder (from any codec; bpp is
read from a `.cod` stream of the same name when there is one), or a model that compresses and
decompresses the references in memory.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from . import metrics
from .folders import STREAM_SUFFIX
from .bitstream import bits_per_pixel
from .codec import Codec, load_model
from .errors import CodLiteError, InputError
from .image_io import IMAGE_SUFFIXES, find_images, load_image

IMAGE_METRICS = ("psnr", "ms_ssim", "lpips_alex", "lpips_vgg", "dists", "colour", "blockiness", "blockiness_ref", "pattern", "pattern_ref")
COLUMNS = ("image", "width", "height", "bytes", "bpp", *IMAGE_METRICS)


@dataclass
class Evaluation:
    """Per-image rows (COLUMNS; bytes/bpp None when unknown), their means, set-level scores."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    set_metrics: dict[str, float] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def means(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for key in ("bpp", *IMAGE_METRICS):
            values = [row[key] for row in self.rows if row[key] is not None and not math.isnan(row[key])]
            out[key] = float(np.mean(values)) if values else None
        return out

    def table(self) -> str:
        """Plain-text table: one line per image, then the means and any set-level scores."""
        head = (f"{'image':<32} {'bpp':>8} {'PSNR':>7} {'MS-SSIM':>8} {'LPIPS-A':>8} {'LPIPS-V':>8} {'DISTS':>7} {'dE':>6} "
                f"{'Block':>6} {'(orig)':>6} {'Pattern':>7} {'(orig)':>6}")
        lines = [head, "-" * len(head)]
        for row in [*self.rows, {"image": "mean", **self.means}]:
            lines.append(
                f"{_short(row['image'], 32):<32} {_fmt(row['bpp'], 4):>8} {_fmt(row['psnr'], 2):>7} {_fmt(row['ms_ssim'], 4):>8} "
                f"{_fmt(row['lpips_alex'], 4):>8} {_fmt(row['lpips_vgg'], 4):>8} {_fmt(row['dists'], 4):>7} {_fmt(row['colour'], 2):>6} "
                f"{_fmt(row['blockiness'], 3):>6} {_fmt(row['blockiness_ref'], 3):>6} "
                f"{_fmt(row['pattern'], 2):>7} {_fmt(row['pattern_ref'], 2):>6}"
            )
        if self.set_metrics:
            lines.append("  ".join(f"{k.upper()} {v:.4g}" for k, v in self.set_metrics.items()))
        return "\n".join(lines)

    def to_csv(self) -> str:
        """One row per image plus a final 'mean' row; empty cells where a value is unknown."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in [*self.rows, {"image": "mean", "width": "", "height": "", "bytes": "", **self.means}]:
            writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
        return buf.getvalue()

    def to_json(self) -> str:
        """Strict JSON: non-finite numbers (PSNR of identical images, MS-SSIM of small ones) become null."""
        doc = {"images": self.rows, "mean": self.means, "set": self.set_metrics,
               "failed": [{"image": p, "error": m} for p, m in self.failed]}
        return json.dumps(_finite(doc), indent=2, allow_nan=False) + "\n"


def evaluate(
    reference_dir: str | os.PathLike,
    decoded_dir: str | os.PathLike | None = None,
    *,
    model: str | os.PathLike | Codec | None = None,
    streams_dir: str | os.PathLike | None = None,
    fid: bool = False,
    fid_patch: int = 64,
    progress: bool = True,
    on_failure: Callable[[str, str], None] | None = None,
) -> Evaluation:
    """Evaluate every image under `reference_dir` against `decoded_dir` (same relative path and
    stem, any image suffix) or, with `model`, against its own compress/decompress round trip."""
    if (decoded_dir is None) == (model is None):
        raise InputError("give exactly one of: a folder of decoded images, a model")
    ref_root = Path(reference_dir)
    if not ref_root.is_dir():
        raise InputError(f"'{ref_root}' is not a folder")
    references = find_images(ref_root)
    if not references:
        raise InputError(f"no images under '{ref_root}'")
    codec = None if model is None else model if isinstance(model, Codec) else load_model(model)
    dec_root = None if decoded_dir is None else Path(decoded_dir)
    if dec_root is not None and not dec_root.is_dir():
        raise InputError(f"'{dec_root}' is not a folder")
    stream_root = Path(streams_dir) if streams_dir is not None else dec_root
    metrics.preload(fid)

    result = Evaluation()
    kept_refs, kept_decs = [], []
    for path in tqdm(references, unit="image", disable=not progress, dynamic_ncols=True):
        rel = path.relative_to(ref_root)
        try:
            reference = load_image(path)
            if codec is not None:
                stream = codec.encode(reference)
                decoded, size = np.asarray(codec.decode(stream)), len(stream)
            else:
                decoded = load_image(_match(dec_root, rel))
                stream_file = stream_root / rel.parent / f"{rel.stem}{STREAM_SUFFIX}"
                size = stream_file.stat().st_size if stream_file.is_file() else None
            if decoded.shape != reference.shape:
                raise InputError(f"decoded size {decoded.shape[1]}x{decoded.shape[0]} differs from the original's "
                                 f"{reference.shape[1]}x{reference.shape[0]}")
        except CodLiteError as e:
            result.failed.append((str(path), str(e)))
            if on_failure is not None:
                on_failure(str(path), str(e))
            continue
        height, width = reference.shape[:2]
        row: dict[str, Any] = {"image": rel.as_posix(), "width": width, "height": height, "bytes": size,
                               "bpp": None if size is None else bits_per_pixel(size, width, height)}
        row.update(metrics.all_metrics(reference, decoded))
        row.update(metrics.grid_artefacts(decoded))
        row.update({f"{k}_ref": v for k, v in metrics.grid_artefacts(reference).items()})
        result.rows.append(row)
        if fid:
            kept_refs.append(reference)
            kept_decs.append(decoded)
    if fid and kept_refs:
        try:
            result.set_metrics = metrics.patch_fid_kid(kept_refs, kept_decs, patch=fid_patch)
        except InputError as e:  # e.g. images smaller than the patch: the per-image rows still stand
            result.failed.append(("FID/KID", str(e)))
            if on_failure is not None:
                on_failure("FID/KID", str(e))
    return result


def _match(dec_root: Path, rel: Path) -> Path:
    """The decoded file for a reference: same folder and stem, the same suffix preferred."""
    folder = dec_root / rel.parent
    candidates = [folder / rel.name] + [folder / f"{rel.stem}{s}" for s in sorted(IMAGE_SUFFIXES) if s != rel.suffix.lower()]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(f"no decoded image for '{rel.as_posix()}' in '{dec_root}'")


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
