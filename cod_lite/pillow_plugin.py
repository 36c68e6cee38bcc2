"""`.cod` as a Pillow format, registered when `cod_lite` is imported (as pillow-avif-plugin and
pillow-jxl-plugin register on import): `Image.open("x.cod")` decodes with the model the stream
names, `image.save("x.cod", quality=50)` (or model=, bpp=; precision=, metadata=, colour=) encodes.
Every error reaches Pillow as an OSError (`BitstreamError`, `ImageFileError`); data that is not
a stream is Pillow's own `UnidentifiedImageError`.

Opening reads and checks the header only; the size comes from it, so Pillow's
`Image.MAX_IMAGE_PIXELS` decompression-bomb check runs before any network does. Pixels are
decoded on first access (`load()`), as with every Pillow format.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO, Any

from PIL import Image, ImageFile

from . import bitstream, zoo
from .codec import PILLOW_INFO_KEYS, decode, load_model
from .errors import CodLiteError, ImageFileError, InputError

FORMAT = "COD"
MIME = "image/x-cod-lite"
EXTENSION = ".cod"


def _accept(prefix: bytes) -> bool:
    return prefix[: len(bitstream.MAGIC)] == bitstream.MAGIC


@contextlib.contextmanager
def _as_oserror() -> Iterator[None]:
    """cod-lite errors as OSErrors, what Pillow-based tools catch (BitstreamError already is one)."""
    try:
        yield
    except OSError:
        raise
    except CodLiteError as e:
        raise ImageFileError(str(e)) from e


class CodImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "cod-lite generative image stream"

    def _open(self) -> None:
        self._stream = self.fp.read()
        header = bitstream.parse(self._stream)  # a defect raises BitstreamError (an OSError), with the reason
        self._size = (header.width, header.height)
        self._mode = "RGB"
        self.info["cod_model"] = header.model_name
        self.info.update({PILLOW_INFO_KEYS[k]: v for k, v in header.metadata.items()})  # exif, icc_profile, xmp
        self.tile = []

    def load(self) -> Any:
        if self._stream is not None:
            with _as_oserror():
                decoded = decode(self._stream)
            self._stream = None
            self.im = decoded.im
        return Image.Image.load(self)


SAVE_OPTIONS = ("model", "bpp", "quality", "precision", "metadata", "colour")


def _save(image: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """Options: model (name or path; default 'default'), or bpp (the bundled model nearest that
    rate), or quality (0-100: the lowest to the highest bundled rate, as `codlite compress
    --quality`); precision (auto/fp32/bf16), metadata ('none' by default, 'all', or kinds of
    exif/icc/xmp: taken from the image's own EXIF and info), colour (True: colour side information).
    Any other option is refused (an OSError), never silently ignored."""
    options = dict(image.encoderinfo)
    with _as_oserror():
        unknown = sorted(set(options) - set(SAVE_OPTIONS))
        if unknown:
            raise InputError(f"unknown .cod save option {', '.join(map(repr, unknown))}; the options are {', '.join(SAVE_OPTIONS)}")
        choices = [k for k in ("model", "bpp", "quality") if options.get(k) is not None]
        if len(choices) > 1:
            raise InputError(f"give one of model=, bpp= and quality=, not {' and '.join(c + '=' for c in choices)}")
        name = options.get("model", "default")
        if options.get("bpp") is not None:
            name = zoo.model_for_bpp(float(options["bpp"]))
        elif options.get("quality") is not None:
            name = zoo.model_for_quality(float(options["quality"]))
        codec = load_model(name, precision=options.get("precision", "auto"))
        rgb = image.convert("RGB") if image.mode != "RGB" else image
        fp.write(codec.encode(rgb, metadata=options.get("metadata", "none"), colour=bool(options.get("colour", True))))


def register() -> None:
    """Make Pillow open and save `.cod`; called by `import cod_lite` (idempotent)."""
    Image.register_open(FORMAT, CodImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
