"""Read any image Pillow can open as HxWx3 uint8 RGB, and write one back, with clear errors.

The codec works on 8-bit RGB only, so every input is brought there the way Pillow users expect:
EXIF orientation applied, grey/palette/CMYK/YCbCr/LAB/HSV converted, 16-bit data scaled to 8 bits
(value >> 8, not clipped) and alpha dropped with a warning. Size is checked from the header,
before any pixel data is decoded.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .errors import InputError
from .fileio import atomic_write

DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "CODLITE_MAX_PIXELS"

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray, bytes]

# Pillow opens 16-bit PGM (and, before 10.3, 16-bit grey PNG) as 32-bit "I": there it means 16-bit data.
_SIXTEEN_BIT_I_FORMATS = frozenset({"PNG", "PPM"})

# suffix -> (Pillow format, save options). Lossy formats at quality 90 by default, as cwebp and
# avifenc users expect of a delivery format (a decoded 4 KB stream became a 560 KB lossless WebP);
# `quality=` / --quality overrides it. PNG at zlib level 1: a decoded Kodak image (768x512) wrote
# in 116 ms against 154 ms at Pillow's default 6, for a file 6.5 % larger (842 -> 896 kB).
SAVE_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    ".png": ("PNG", {"compress_level": 1}),
    ".jpg": ("JPEG", {"quality": 90}),
    ".jpeg": ("JPEG", {"quality": 90}),
    ".webp": ("WEBP", {"quality": 90}),
    ".avif": ("AVIF", {"quality": 90}),
    ".jxl": ("JXL", {"quality": 90}),
    ".tif": ("TIFF", {}),
    ".tiff": ("TIFF", {}),
    ".bmp": ("BMP", {}),
}
LOSSY_FORMATS = ("JPEG", "WEBP", "AVIF", "JXL")  # the ones `quality` applies to
DEFAULT_QUALITY = 90

# Pillow's bomb limit is a process-wide global; we swap in ours while decoding, one call at a time.
_PILLOW_LIMIT_LOCK = threading.Lock()


# image files by name (what folders and evaluations look for; files without one are sniffed)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif", ".jxl", ".ppm", ".pgm", ".pnm", ".tga"}


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under a folder (by suffix, recursively), in a stable sorted order."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def pixel_limit(max_pixels: int | None = None) -> int:
    """The pixel limit in force: the argument if given, else $CODLITE_MAX_PIXELS, else the default."""
    if max_pixels is None:
        text = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not text:
            return DEFAULT_MAX_PIXELS
        try:
            max_pixels = int(text)
        except ValueError:
            raise InputError(f"{MAX_PIXELS_ENV} must be a positive integer, got {text!r}") from None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise InputError(f"the pixel limit must be a positive integer, got {max_pixels!r}")
    return max_pixels


def load_image(source: ImageSource, max_pixels: int | None = None) -> np.ndarray:
    """Path, PIL image, numpy array or the bytes of an image file -> C-contiguous HxWx3 uint8 RGB array.

    Alpha is discarded, not composited: the colour channels are kept as stored, with a UserWarning.
    Multi-frame files give their first frame. Raises InputError for anything unusable.
    """
    limit = pixel_limit(max_pixels)
    if isinstance(source, np.ndarray):
        label = "array"
        pixels, had_alpha = _from_array(source, limit)
    elif isinstance(source, Image.Image):
        label = "image"
        _check_size(source.width, source.height, limit, label)
        pixels, had_alpha = _decode(source, label, limit)
    elif isinstance(source, (bytes, bytearray)):
        label = "image data"
        pixels, had_alpha = _load_path(io.BytesIO(source), label, limit)
    elif isinstance(source, (str, os.PathLike)):
        label = f"image '{os.fspath(source)}'"
        pixels, had_alpha = _load_path(Path(source), label, limit)
    else:
        raise InputError(f"expected an image path, PIL image, numpy array or image bytes, got {type(source).__name__}")
    if had_alpha:
        warnings.warn(f"{label} has an alpha channel; it is discarded (cod-lite codes RGB only)", UserWarning, stacklevel=2)
    return pixels


def save_format(path: str | os.PathLike, quality: int | None = None) -> tuple[str, dict]:
    """Pillow format and options for a path's suffix (with `quality` 0-100 for a lossy format);
    InputError for a suffix we do not write, a format this Pillow cannot write, or a quality
    for a lossless format."""
    suffix = Path(path).suffix.lower()
    if suffix not in SAVE_FORMATS:
        raise InputError(f"cannot save '{path}': unknown suffix {suffix!r}; use one of {', '.join(SAVE_FORMATS)}")
    fmt, options = SAVE_FORMATS[suffix]
    if fmt == "JXL":
        with suppress(ImportError):
            import pillow_jxl  # noqa: F401 - registers JPEG XL with Pillow
    Image.init()
    if fmt not in Image.SAVE:
        hint = 'pip install "cod-lite[eval]" (pillow-jxl-plugin)' if fmt == "JXL" else "a Pillow built with it"
        raise InputError(f"cannot save '{path}': this Pillow cannot write {fmt} ({hint})")
    if quality is not None:
        if fmt not in LOSSY_FORMATS:
            raise InputError(f"quality applies to lossy outputs ({', '.join(f.lower() for f in LOSSY_FORMATS)}), not {suffix[1:]}")
        if not 0 <= quality <= 100:
            raise InputError(f"quality must be 0-100, got {quality}")
        options = {**options, "quality": int(quality)}
    return fmt, options


def save_image(
    image: np.ndarray, path: str | os.PathLike, *, overwrite: bool = False, metadata: Mapping[str, bytes] | None = None,
    quality: int | None = None,
) -> Path:
    """Write an HxWx3 uint8 array atomically, in the format named by the path's suffix (lossy ones
    at `quality`, default DEFAULT_QUALITY), with `metadata` (EXIF/ICC/XMP, e.g. a decoded
    stream's) where that format carries it."""
    target = Path(path)
    save_format(target, quality)  # an unknown suffix fails before anything else
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise InputError(f"cannot save '{target}': expected an HxWx3 uint8 array, got {_describe(image)}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"cannot save '{target}': the image is empty ({image.shape[1]}x{image.shape[0]})")
    return atomic_write(target, encode_image(image, target.suffix.lower(), metadata, quality), overwrite=overwrite)


METADATA_KINDS = ("exif", "icc", "xmp")
ORIENTATION_TAG = 0x0112


def metadata_kinds(spec: str | Sequence[str]) -> tuple[str, ...]:
    """'all', 'none' or a comma-separated list (or a sequence) of exif/icc/xmp -> the kinds."""
    names = [n.strip().lower() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    if names in (["all"], ["none"]):
        return METADATA_KINDS if names == ["all"] else ()
    unknown = sorted(set(names) - set(METADATA_KINDS))
    if unknown:
        raise InputError(f"unknown metadata kind {unknown[0]!r}: use all, none, or a list of {', '.join(METADATA_KINDS)}")
    return tuple(k for k in METADATA_KINDS if k in names)


def read_metadata(source: ImageSource, kinds: Sequence[str] = METADATA_KINDS) -> dict[str, bytes]:
    """The EXIF, ICC profile and XMP of an image file (path, bytes or PIL image) among `kinds`; an
    array has none. EXIF orientation is reset to 1, since load_image applies it to the pixels."""
    if isinstance(source, np.ndarray) or not kinds:
        return {}
    if isinstance(source, Image.Image):
        return _metadata_of(source, kinds)
    try:
        with _pillow_limit(None), Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as image:
            return _metadata_of(image, kinds)
    except (OSError, SyntaxError, ValueError):
        return {}  # load_image reports unreadable input with its reason


def _metadata_of(image: Image.Image, kinds: Sequence[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    if "exif" in kinds:
        exif = image.getexif()
        if len(exif):
            if ORIENTATION_TAG in exif:
                exif[ORIENTATION_TAG] = 1
            found["exif"] = exif.tobytes()
    if "icc" in kinds and image.info.get("icc_profile"):
        found["icc"] = bytes(image.info["icc_profile"])
    xmp = image.info.get("xmp")
    if "xmp" in kinds and xmp:
        found["xmp"] = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
    return found


def metadata_save_options(fmt: str, metadata: Mapping[str, bytes]) -> dict[str, Any]:
    """Pillow save options that write `metadata` into a PNG/JPEG/WebP/AVIF/TIFF file (others carry none)."""
    options: dict[str, Any] = {}
    if fmt not in ("PNG", "JPEG", "WEBP", "AVIF", "TIFF"):
        return options
    if "exif" in metadata:
        options["exif"] = metadata["exif"]
    if "icc" in metadata:
        options["icc_profile"] = metadata["icc"]
    if "xmp" in metadata and fmt in ("JPEG", "WEBP", "AVIF"):
        options["xmp"] = metadata["xmp"]
    elif "xmp" in metadata and fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", metadata["xmp"].decode("utf-8", errors="replace"))
        options["pnginfo"] = info
    return options


def encode_image(image: np.ndarray, suffix: str, metadata: Mapping[str, bytes] | None = None, quality: int | None = None) -> bytes:
    """An HxWx3 uint8 array as the bytes of an image file in the format of `suffix` ('.png', ...),
    carrying `metadata` (kind -> bytes) where the format can."""
    fmt, options = save_format(f"image{suffix}", quality)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format=fmt, **options, **metadata_save_options(fmt, metadata or {}))
    return buffer.getvalue()


def _load_path(path: Path | io.BytesIO, label: str, limit: int) -> tuple[np.ndarray, bool]:
    if isinstance(path, Path) and path.is_dir():
        raise InputError(f"cannot read {label}: it is a folder")
    try:
        with _pillow_limit(None):  # header only; our own limit is applied just below
            image = Image.open(path)
    except FileNotFoundError:
        raise InputError(f"cannot read {label}: no such file") from None
    except PermissionError:
        raise InputError(f"cannot read {label}: permission denied") from None
    except UnidentifiedImageError:
        raise InputError(f"cannot read {label}: not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's plugins report bad headers all three ways
        raise InputError(f"cannot read {label}: damaged or truncated header ({exc})") from None
    with image:
        if image.format == "COD":  # Pillow would decode it through our plugin: a second round of loss
            raise InputError(f"{label} is already a cod-lite stream; decompress it instead of compressing it again")
        _check_size(image.width, image.height, limit, label)
        return _decode(image, label, limit)


def _decode(image: Image.Image, label: str, limit: int) -> tuple[np.ndarray, bool]:
    """Decode (the first frame of) a size-checked image to RGB; returns it and whether alpha was dropped."""
    try:
        with _pillow_limit(limit):
            sixteen_bit = image.mode.startswith("I;16") or (image.mode == "I" and image.format in _SIXTEEN_BIT_I_FORMATS)
            image = ImageOps.exif_transpose(image)
            has_alpha = image.has_transparency_data
            return _to_rgb(image, sixteen_bit, has_alpha), has_alpha
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"cannot read {label}: {exc}; raise the limit with max_pixels= or {MAX_PIXELS_ENV}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read {label}: damaged, truncated or unsupported image data ({exc})") from None


def _to_rgb(image: Image.Image, sixteen_bit: bool, has_alpha: bool) -> np.ndarray:
    if sixteen_bit:
        # Pillow's own conversion clips 16-bit values at 255; scale instead.
        grey = (np.clip(np.asarray(image), 0, 65535).astype(np.uint16) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if image.mode == "La":  # premultiplied; Pillow converts it only to LA
        image = image.convert("LA")
    # Alpha images go through RGBA so palette transparency is read without Pillow's own warning.
    rgb = image.convert("RGBA" if has_alpha else "RGB")
    return np.ascontiguousarray(np.asarray(rgb)[:, :, :3])


def _from_array(array: np.ndarray, limit: int) -> tuple[np.ndarray, bool]:
    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))
    if array.dtype != np.uint8 or not shape_ok:
        raise InputError(f"expected a uint8 array of shape HxWx3 (RGB), HxW (grey) or HxWx4 (RGBA), got {_describe(array)}")
    _check_size(array.shape[1], array.shape[0], limit, "array")
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2)), False
    if array.shape[2] == 4:
        return np.ascontiguousarray(array[:, :, :3]), True
    return np.ascontiguousarray(array), False


def _check_size(width: int, height: int, limit: int, label: str) -> None:
    if width <= 0 or height <= 0:
        raise InputError(f"{label} is empty ({width}x{height})")
    pixels = width * height
    if pixels > limit:
        raise InputError(
            f"{label} is {width}x{height} = {_megapixels(pixels)}, above the limit of {_megapixels(limit)}; "
            f"raise it with max_pixels= or {MAX_PIXELS_ENV}"
        )


@contextmanager
def _pillow_limit(limit: int | None) -> Iterator[None]:
    """Make Pillow's bomb check enforce our limit (None: off), raising instead of warning."""
    with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP" if pixels >= 100_000 else f"{pixels} pixels"


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"shape {value.shape} dtype {value.dtype}"
    return type(value).__name__
