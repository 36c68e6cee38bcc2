"""`.cod` as a Pillow format, registered when `cod_lite` is imported (as pillow-avif-plugin and
pillow-jxl-plugin register on import): `Image.open("x.cod")` decodes with the model the stream
names, `image.save("x.cod", model=..., precision=...)` encodes.

Opening reads and checks the header only; the size comes from it, so Pillow's
`Image.MAX_IMAGE_PIXELS` decompression-bomb check runs before any network does. Pixels are
decoded on first access (`load()`), as with every Pillow format.
"""

from __future__ import annotations

from typing import IO, Any

from PIL import Image, ImageFile

from . import bitstream
from .codec import PILLOW_INFO_KEYS, decode, load_model

FORMAT = "COD"
MIME = "image/x-cod-lite"
EXTENSION = ".cod"


def _accept(prefix: bytes) -> bool:
    return prefix[: len(bitstream.MAGIC)] == bitstream.MAGIC


class CodImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "cod-lite generative image stream"

    def _open(self) -> None:
        self._stream = self.fp.read()
        header = bitstream.parse(self._stream)  # a defect raises BitstreamError, with the reason
        self._size = (header.width, header.height)
        self._mode = "RGB"
        self.info["cod_model"] = header.model_name
        self.info.update({PILLOW_INFO_KEYS[k]: v for k, v in header.metadata.items()})  # exif, icc_profile, xmp
        self.tile = []

    def load(self) -> Any:
        if self._stream is not None:
            decoded = decode(self._stream)
            self._stream = None
            self.im = decoded.im
        return Image.Image.load(self)


def _save(image: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """Options: model (name or path, default 'default'), precision (auto/fp32/bf16), metadata
    ('none' by default, 'all', or kinds of exif/icc/xmp: taken from the image's own EXIF and info)."""
    options = image.encoderinfo
    codec = load_model(options.get("model", "default"), precision=options.get("precision", "auto"))
    fp.write(codec.encode(image.convert("RGB") if image.mode != "RGB" else image, metadata=options.get("metadata", "none")))


def register() -> None:
    """Make Pillow open and save `.cod`; called by `import cod_lite` (idempotent)."""
    Image.register_open(FORMAT, CodImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
