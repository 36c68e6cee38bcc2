"""One exception family, so callers can catch every cod-lite failure with a single clause."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


class CodLiteError(Exception):
    """Base class of every error cod-lite raises on purpose."""


class BitstreamError(CodLiteError):
    """A .cod stream is truncated, corrupted, foreign or of an unsupported version."""


class ModelNotFoundError(CodLiteError):
    """A model name, path or stream identity does not resolve to weights on this machine."""


class InputError(CodLiteError):
    """An input image (or array) cannot be used: unreadable, empty, too large, wrong shape."""


class CheckpointError(CodLiteError):
    """A checkpoint or weights file is malformed, unsafe, or does not fit the model config."""


class OutputError(CodLiteError):
    """An output path cannot be written: exists, unwritable, or its folder is missing."""


def exit_status(run: Callable[[], int | None]) -> int:
    """`run()` as a command's exit status: what it returns (None: 0), or 1 with one line on
    stderr for bad input or a failed file operation (CODLITE_DEBUG=1 shows the traceback
    instead). For the non-click entry points (`python -m cod_lite.train`, the GPU session)."""
    try:
        return run() or 0
    except (CodLiteError, OSError, ValueError) as e:
        if os.environ.get("CODLITE_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
