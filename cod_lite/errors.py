"""One exception family, so callers can catch every cod-lite failure with a single clause."""


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
