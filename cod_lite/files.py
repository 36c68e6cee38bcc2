"""One file in, one file out: what `codlite compress` and `codlite decompress` do per file, for
any program that wants the same behaviour (the CLI is a loop over these).

Both read `STDIO` ("-") as standard input and write it as standard output, like cwebp and cjxl;
files are written atomically and never replace an existing one unless `overwrite`; a bad input
or target is a `CodLiteError` with a one-line message, raised before any network work where it
can be known then.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from .codec import Codec, decode, load_model, stream_metadata
from .errors import InputError, describe
from .fileio import STDIO, atomic_write, check_target, read_input, write_output
from .image_io import SAVE_FORMATS, encode_image, metadata_kinds, save_format, save_image
from .models.sampling import MAX_SEED
from .processes import FileWork, run, split
from .streaminfo import StreamInfo, inspect
from .tiling import DEFAULT_MAX_MEMORY, parse_memory

IMAGE_FORMATS = tuple(SAVE_FORMATS)  # suffixes decompress_file writes: ".png", ".jpg", ...
PathLike = str | os.PathLike

# the public names: these two, and the file helpers and settings they share with the CLI
__all__ = ["DEFAULT_MAX_MEMORY", "IMAGE_FORMATS", "MAX_SEED", "STDIO", "atomic_write", "check_target", "compress_file", "decompress_file",
           "each_file", "parse_memory", "read_input"]


def compress_file(
    source: PathLike, target: PathLike, codec: Codec, *, metadata: str = "none", colour: bool = True, effort: int = 0,
    overwrite: bool = False,
) -> StreamInfo:
    """Code the image file `source` into the stream file `target` with `codec`; `metadata`,
    `colour` and `effort` as in `Codec.encode`. Returns what the stream holds."""
    kinds = metadata_kinds(metadata)
    if str(target) != STDIO:
        check_target(target, overwrite=overwrite)
    data = codec.encode(read_input(source) if str(source) == STDIO else source, metadata=kinds, colour=colour, effort=effort)
    write_output(target, data, overwrite=overwrite)
    return inspect(data)


def decompress_file(
    source: PathLike,
    target: PathLike,
    *,
    model: str | PathLike | Codec | None = None,
    reference_format: bool = False,
    image_format: str | None = None,
    metadata: str = "all",
    steps: int | None = None,
    seed: int | None = None,
    max_memory: int | str = DEFAULT_MAX_MEMORY,
    precision: str = "auto",
    overwrite: bool = False,
    quality: int | None = None,
    device: str | None = None,
    backend: str = "torch",
) -> tuple[int, int]:
    """Decode the stream file `source` into the image file `target` (format from its suffix; for
    stdout `image_format`, default png; lossy formats at `quality`, default 90), with what of the
    stream's EXIF/ICC/XMP `metadata` names. `reference_format`: `source` is an authors' .cod,
    which needs `model`. Returns (width, height)."""
    kinds = metadata_kinds(metadata)
    suffix = "." + (image_format or "png").lower().lstrip(".")
    save_format(f"image{suffix}" if str(target) == STDIO else target, quality)  # an unknown format fails first
    if str(target) != STDIO:
        check_target(target, overwrite=overwrite)
    data = read_input(source)
    if reference_format:
        if model is None:
            raise InputError("an authors' .cod (reference_format) needs a model: it does not name its own")
        codec = model if isinstance(model, Codec) else load_model(model, device, max_memory=max_memory, precision=precision, backend=backend)
        image = codec.decode_reference(data, steps=steps, seed=seed)
    else:
        image = decode(data, model=model, max_memory=max_memory, steps=steps, seed=seed, precision=precision, device=device, backend=backend)
    kept = {kind: value for kind, value in stream_metadata(image).items() if kind in kinds}
    if str(target) == STDIO:
        write_output(STDIO, encode_image(np.asarray(image), suffix, kept, quality))
    else:
        save_image(np.asarray(image), target, overwrite=overwrite, metadata=kept, quality=quality)
    return image.width, image.height


def each_file(
    work: FileWork, jobs: Sequence[tuple[str, str]], threads: int | None = None, device: str | None = None,
    max_memory: int | str = DEFAULT_MAX_MEMORY,
) -> Iterator[tuple[tuple[str, str], bool, Any]]:
    """`work.run(codec, job)` for every (input, output) job, `work.codec()` loaded once per
    process: here, or for several files on a CPU in network processes that share `threads`
    (default: every core; `processes.split`). Yields (job, True, result) or (job, False, a
    one-line reason) as each finishes: one file's failure does not stop the others."""
    processes, threads_each = split(threads, len(jobs), parse_memory(max_memory), device=device)
    if processes > 1:
        yield from run(work, jobs, processes, threads_each)
        return
    if threads_each:
        torch.set_num_threads(threads_each)
    codec = work.codec()
    for job in jobs:
        try:
            yield job, True, work.run(codec, job)
        except Exception as e:  # noqa: BLE001 - reported; the other files go on
            yield job, False, describe(e)
