"""One exception family, so callers can catch every cod-lite failure with a single clause."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextvars import ContextVar


class CodLiteError(Exception):
    """Base class of every error cod-lite raises on purpose."""


class BitstreamError(CodLiteError, OSError):
    """A .cod stream is truncated, corrupted, foreign or of an unsupported version (an OSError,
    as Pillow's tools expect of a damaged image file)."""


class ModelNotFoundError(CodLiteError):
    """A model name, path or stream identity does not resolve to weights on this machine."""


class InputError(CodLiteError):
    """An input image (or array) cannot be used: unreadable, empty, too large, wrong shape."""


class CheckpointError(CodLiteError):
    """A checkpoint or weights file is malformed, unsafe, or does not fit the model config."""


class ImageFileError(CodLiteError, OSError):
    """A cod-lite failure met inside Pillow (a missing model, a bad save option): an OSError, what
    Pillow-based tools catch; the original error is its __cause__."""


class OutputError(CodLiteError):
    """An output path cannot be written: exists, unwritable, or its folder is missing."""


def describe(error: Exception) -> str:
    """One line for a file that failed: our own errors and OSErrors speak for themselves, anything
    else is named by its type."""
    return str(error) if isinstance(error, (CodLiteError, OSError)) else f"{type(error).__name__}: {error}"


_COMMAND_LINE: ContextVar[bool] = ContextVar("cod_lite_command_line", default=False)


def option(cli: str, python: str) -> str:
    """How a message names an option to its reader: `cli` ("--force") inside a `codlite` command,
    else `python` ("overwrite=True"), so neither meets the other's words."""
    return cli if _COMMAND_LINE.get() else python


def exit_status(run: Callable[[], int | None], prog: str = "codlite") -> int:
    """`run()` as a command's exit status, for every entry point (the codlite CLI, `python -m
    cod_lite.train`, tools/): what it returns (None: 0); else one line on stderr instead of a
    traceback (CODLITE_DEBUG=1 shows it): 1 for bad input or a failed file operation, 130 when
    interrupted, 2 for anything unexpected."""
    token = _COMMAND_LINE.set(True)
    try:
        return run() or 0
    except KeyboardInterrupt:
        print(f"{prog}: error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the promise of every command: no tracebacks
        if os.environ.get("CODLITE_DEBUG"):
            raise
        expected = isinstance(e, (CodLiteError, OSError, ValueError))
        message = str(e) if expected else f"unexpected {type(e).__name__}: {e} (set CODLITE_DEBUG=1 for details)"
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 1 if expected else 2
    finally:
        _COMMAND_LINE.reset(token)
