"""cod-lite: real-time generative image compression (CoD-Lite, arXiv 2604.12525).

    import cod_lite
    data = cod_lite.encode("photo.png")          # bytes, bundled default model
    image = cod_lite.decode(data)                 # PIL.Image, model found from the stream
    PIL.Image.open("photo.cod")                   # importing cod_lite registers .cod with Pillow
    cod_lite.compress_file("photo.png", "photo.cod", cod_lite.load_model())  # what `codlite compress` does

`cod_lite.files` holds the file-level helpers the CLI is built on (stdin/stdout, atomic writes).
"""

from .folders import ConvertSummary, convert
from .codec import Codec, decode, encode, load_model, set_threads
from .evaluate import Evaluation, evaluate
from .export import export_onnx
from .files import compress_file, decompress_file
from .errors import BitstreamError, CheckpointError, CodLiteError, ImageFileError, InputError, ModelNotFoundError, OutputError, exit_status
from .kernels.fast import PRECISIONS
from .onnx_runtime import BACKENDS
from .official import import_official
from .pillow_plugin import register as register_pillow
from .prior_fit import fit_prior
from .streaminfo import StreamInfo, inspect
from .zoo import available_models, model_for_bpp, model_for_quality, user_model_dir
from .zoo.hub import listing as official_models
from .zoo.registry import fetch as fetch_model

register_pillow()

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "BitstreamError",
    "CheckpointError",
    "Codec",
    "ConvertSummary",
    "CodLiteError",
    "Evaluation",
    "ImageFileError",
    "InputError",
    "StreamInfo",
    "ModelNotFoundError",
    "OutputError",
    "available_models",
    "compress_file",
    "convert",
    "decode",
    "decompress_file",
    "encode",
    "evaluate",
    "exit_status",
    "export_onnx",
    "fetch_model",
    "fit_prior",
    "import_official",
    "inspect",
    "load_model",
    "model_for_bpp",
    "model_for_quality",
    "official_models",
    "register_pillow",
    "set_threads",
    "user_model_dir",
]
__version__ = "0.3.0"
